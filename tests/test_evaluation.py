"""The evaluation measures against hand-computed numbers, brute-force definitions and StarDist."""

import csv
import itertools
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.ndimage
import scipy.sparse
import scipy.sparse.csgraph

from keras_unet import build_unet
from keras_unet.evaluation import (
    DEFAULT_THRESHOLDS,
    ISBI_THRESHOLDS,
    METRICS,
    POOLING,
    PROBABILITY_METRICS,
    EvaluationReport,
    Matching,
    evaluate_labels,
    evaluate_model,
    evaluate_probabilities,
    evaluate_samples,
    matching,
    matching_dataset,
    pixel_dice,
    pixel_iou,
    rand_error,
    rand_error_thresholds,
    seg_dataset,
    seg_score,
    variation_of_information_error,
    warp,
    warping_error,
)
from keras_unet.evaluation.isbi import _neighbourhood_codes, _simple_point_table


def _random_labels(seed, shape=(12, 15), objects=4):
    return np.random.default_rng(seed).integers(0, objects + 1, shape)


@pytest.mark.parametrize("seed", range(3))
def test_pixel_iou_and_dice_per_class(seed):
    prediction, truth = _random_labels(seed), _random_labels(seed + 10)
    iou, dice = pixel_iou(truth, prediction), pixel_dice(truth, prediction)
    for cls, (p, t) in enumerate([(prediction == 0, truth == 0), (prediction > 0, truth > 0)]):
        both = np.sum(p & t)
        assert iou[cls] == pytest.approx(both / np.sum(p | t))
        assert dice[cls] == pytest.approx(2 * both / (p.sum() + t.sum()))
    three = pixel_iou(truth % 3, prediction % 3, num_classes=3)
    assert three[2] == pytest.approx(np.sum((prediction % 3 == 2) & (truth % 3 == 2))
                                     / np.sum((prediction % 3 == 2) | (truth % 3 == 2)))


def test_pixel_metrics_hand_numbers_and_absent_classes():
    prediction = np.array([[0, 1, 1, 0]])
    truth = np.array([[0, 1, 0, 0]])
    assert pixel_iou(truth, prediction).tolist() == [2 / 3, 1 / 2]
    assert pixel_dice(truth, prediction).tolist() == [0.8, 2 / 3]
    empty = pixel_iou(np.zeros((2, 2), int), np.zeros((2, 2), int))
    assert empty[0] == 1.0 and math.isnan(empty[1])
    with pytest.raises(ValueError, match="num_classes=3"):
        pixel_iou(np.array([[0]]), np.array([[3]]), num_classes=3)


def _rand_error_by_pairs(prediction, truth):
    """Adapted Rand error by enumerating pixel pairs, as the ISBI 2012 script defines it.

    Pixels unlabelled in the truth are ignored; two pixels are joined in the prediction only
    when they share a non-zero label (predicted background pixels are singletons).
    """
    keep = truth.ravel() > 0
    p, t = prediction.ravel()[keep], truth.ravel()[keep]
    same_both = same_p = same_t = 0
    for i, j in itertools.permutations(range(len(p)), 2):
        joined = p[i] == p[j] and p[i] > 0
        same_both += joined and t[i] == t[j]
        same_p += joined
        same_t += t[i] == t[j]
    return 1 - 2 * same_both / (same_p + same_t)


@pytest.mark.parametrize("seed", range(3))
def test_rand_error_equals_pair_counting(seed):
    prediction, truth = _random_labels(seed, (5, 6), 3), _random_labels(seed + 5, (5, 6), 3)
    assert rand_error(truth, prediction) == pytest.approx(_rand_error_by_pairs(prediction, truth))
    assert rand_error(truth, truth) == 0.0


def test_rand_error_takes_prediction_first():
    truth = np.array([[1, 1, 2, 2]])
    merged = np.array([[1, 1, 1, 1]])
    # pairs joined in the prediction: 12, of which 4 right; in the truth: 4: F = 8 / 16
    assert rand_error(truth, merged) == pytest.approx(0.5)
    assert rand_error(merged, truth) == pytest.approx(0.5)
    split = np.array([[1, 2, 3, 4]])
    assert rand_error(truth, split) == pytest.approx(1.0)


def test_rand_error_predicted_background_is_not_one_segment():
    """Holes predicted inside many cells split those cells; they do not merge the cells."""
    truth = np.zeros((40, 40), int)
    for index, (y, x) in enumerate(itertools.product(range(0, 40, 10), repeat=2)):
        truth[y + 1:y + 9, x + 1:x + 9] = index + 1
    holed = truth.copy()
    holed[4:6, 4:6] = 0
    holed[4:6, 14:16] = 0
    holed[24:26, 34:36] = 0
    # 12 of 1024 cell pixels lost to three holes: a small error, as the pair count says
    assert rand_error(truth, holed) == pytest.approx(_rand_error_by_pairs(holed, truth))
    assert rand_error(truth, holed) < 0.02
    assert rand_error(truth, np.zeros_like(truth)) == 1.0


def test_simple_points_agree_with_global_topology():
    """A pixel is simple iff flipping it keeps the numbers of objects and background components."""
    rng = np.random.default_rng(0)
    full = scipy.ndimage.generate_binary_structure(2, 2)
    cross = scipy.ndimage.generate_binary_structure(2, 1)
    for connectivity in (4, 8):
        table = _simple_point_table(connectivity)
        fg, bg = (cross, full) if connectivity == 4 else (full, cross)

        def counts(image, fg=fg, bg=bg):
            return scipy.ndimage.label(image, fg)[1], scipy.ndimage.label(~image, bg)[1]

        for _ in range(60):
            image = np.zeros((9, 9), bool)
            image[2:7, 2:7] = rng.random((5, 5)) < rng.random()
            codes = _neighbourhood_codes(image)
            before = counts(image)
            for y, x in itertools.product(range(2, 7), repeat=2):
                flipped = image.copy()
                flipped[y, x] = ~flipped[y, x]
                assert table[codes[y, x]] == (counts(flipped) == before)


def _two_cells(gap_start=9, gap_width=2, shape=(20, 24)):
    labels = np.zeros(shape, int)
    labels[3:17, 2:gap_start] = 1
    labels[3:17, gap_start + gap_width:22] = 2
    return labels


def test_warping_error_is_zero_for_identical_and_shifted_boundaries():
    truth = _two_cells()
    assert warping_error(truth, truth) == 0.0
    for shift in (1, 2):
        moved = np.roll(truth, shift, axis=0)
        assert np.sum((moved > 0) != (truth > 0)) > 20
        assert warping_error(truth, moved) == 0.0
    grown = truth.copy()
    grown[2:18, 1:8] = 1  # cell 1 grows by up to 2 px towards the border: still one cell
    assert warping_error(truth, grown) == 0.0


def test_warping_error_counts_merges_splits_and_missing_cells():
    truth = _two_cells()
    pixels = truth.size
    merged = (truth > 0).astype(int)
    merged[3:17, 9:11] = 1  # the gap is filled: the two cells merge into one
    # the reference warps over the gap up to a seam of 14 px, each of which would join the cells
    assert warping_error(truth, merged) == pytest.approx(14 / pixels)
    split = truth.copy()
    split[9, 2:9] = 0  # cell 1 is cut in two by a line: all but its last pixel warp away
    assert warping_error(truth, split) == pytest.approx(1 / pixels)
    missing = truth.copy()
    missing[truth == 2] = 0
    assert warping_error(truth, missing) == pytest.approx(1 / pixels)
    hole = truth.copy()
    hole[8:11, 4:7] = 0  # a hole appears in cell 1: no pixel of it can open without a hole
    assert warping_error(truth, hole) == pytest.approx(9 / pixels)


def test_touching_instances_count_as_separate_cells():
    truth = _two_cells(gap_width=0)  # labels 1 and 2 touch
    merged = (truth > 0).astype(int)
    assert warping_error(truth, merged) > 0
    assert warping_error(truth, truth) == 0.0


def test_warp_keeps_topology_and_matches_target_where_it_can():
    source = np.zeros((9, 9), bool)
    source[2:7, 2:7] = True
    target = np.zeros((9, 9), bool)
    target[1:8, 3:5] = True
    warped = warp(source, target)
    assert scipy.ndimage.label(warped)[1] == 1
    np.testing.assert_array_equal(warped, target)


def _seg_by_definition(prediction, truth):
    scores = []
    for obj in np.unique(truth[truth > 0]):
        reference = truth == obj
        score = 0.0
        for cand in np.unique(prediction[reference]):
            predicted = prediction == cand
            if cand and np.sum(reference & predicted) > 0.5 * reference.sum():
                score = np.sum(reference & predicted) / np.sum(reference | predicted)
        scores.append(score)
    return np.mean(scores)


def test_seg_score_hand_numbers():
    truth = np.array([[1, 1, 1, 1, 0, 2, 2, 0, 3, 3]])
    prediction = np.array([[5, 5, 5, 7, 7, 9, 0, 0, 4, 4]])
    # object 1: 3/4 covered by 5, union 4 -> 0.75; object 2: exactly half -> 0; object 3: 1.0
    assert seg_score(truth, prediction) == pytest.approx((0.75 + 0 + 1) / 3)
    assert math.isnan(seg_score(np.zeros_like(truth), prediction))


@pytest.mark.parametrize("seed", range(3))
def test_seg_score_equals_definition(seed):
    rng = np.random.default_rng(seed)
    truth = scipy.ndimage.label(rng.random((30, 30)) > 0.4)[0]
    prediction = scipy.ndimage.label(scipy.ndimage.binary_opening(truth > 0))[0]
    assert seg_score(truth, prediction) == pytest.approx(_seg_by_definition(prediction, truth))


@pytest.mark.parametrize("metric", [pixel_iou, rand_error, warping_error, seg_score,
                                    variation_of_information_error, matching])
def test_metrics_reject_mismatched_or_non_label_images(metric):
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(4, 3\)"):
        metric(np.zeros((3, 4), int), np.zeros((4, 3), int))
    with pytest.raises(ValueError, match="integer labels"):
        metric(np.zeros((3, 4)), np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="negative"):
        metric(np.zeros((3, 4), int), -np.ones((3, 4), int))


# --- object matching -------------------------------------------------------------------------
# The label pairs below were scored with stardist.matching.matching / matching_dataset of
# StarDist 0.9.2 (pip install stardist==0.9.2 in a separate venv, numpy 2.4.6); the tables hold
# its numbers. StarDist computes the IoU in float32, so the IoU-based fields agree to ~1e-7.

MATCHING_FIELDS = ("tp", "fp", "fn", "precision", "recall", "accuracy", "f1", "mean_true_score",
                   "mean_matched_score", "panoptic_quality")


def _mixed():
    """Shifted, split (one true object, two predictions), missed, extra and exact objects."""
    truth = np.zeros((12, 16), np.int32)
    prediction = np.zeros((12, 16), np.int32)
    truth[1:5, 1:5] = 7        # 16 px, matched by a shifted prediction (IoU 12/20)
    truth[1:5, 8:15] = 3       # 28 px, covered by two predictions (IoU 12/28 and 16/28)
    truth[7:11, 1:5] = 42      # missed
    truth[6:8, 14:16] = 5      # found exactly
    prediction[1:5, 2:6] = 1
    prediction[1:5, 8:11] = 9
    prediction[1:5, 11:15] = 4
    prediction[7:11, 9:13] = 2  # no true object there
    prediction[6:8, 14:16] = 8
    return truth, prediction


def _tie():
    """One true object, two predicted halves with IoU exactly 0.5 each."""
    truth = np.zeros((4, 6), np.int32)
    prediction = np.zeros((4, 6), np.int32)
    truth[0:4, 0:4] = 1
    prediction[0:4, 0:2] = 1
    prediction[0:4, 2:4] = 2
    return truth, prediction


def _assignment():
    """Greedy matching at IoU 0.25 finds 1 pair, the optimal assignment 2."""
    truth = np.zeros((1, 20), np.int32)
    prediction = np.zeros((1, 20), np.int32)
    truth[0, 0:10] = 1
    truth[0, 10:20] = 2
    prediction[0, 3:15] = 1    # IoU 7/15 with truth 1, 5/17 with truth 2
    prediction[0, 0:3] = 2     # IoU 3/10 with truth 1
    return truth, prediction


def _edge():
    """IoUs exactly on thresholds: 7/10 and 3/4."""
    truth = np.zeros((2, 10), np.int32)
    prediction = np.zeros((2, 10), np.int32)
    truth[0, 0:10] = 1
    prediction[0, 0:7] = 1
    truth[1, 0:4] = 2
    prediction[1, 1:4] = 2
    return truth, prediction


def _empties():
    empty = np.zeros((5, 5), np.int32)
    one = empty.copy()
    one[1:3, 1:3] = 1
    return [(empty, empty), (empty, one), (one, empty)]


def _decode(rows):
    return np.array([[int(character, 36) for character in row] for row in rows], np.int32)


def _crowded():
    """21 random true objects against 25 shifted, thinned and relabelled ones."""
    truth = _decode(["001100002003044405", "600100770703004405", "088077770770900090",
                     "a08070077770909999", "aa0000070009990990", "a0bbbbb0000990090c",
                     "00b000009999999990", "000d0ee00090090900", "f00000ee009990990g",
                     "0999000e090090090g", "h00999009999999990", "hhh009999009099900",
                     "h000i00990j0090909", "0kkk0ll00jj0990999"])
    prediction = _decode(["100020000300405500", "110020060070400500", "0088090660770a000b",
                          "0c08090060700a0bbb", "0cc000006000aaa00b", "cc0ddddd0000aa00a0",
                          "000d00000eee0aaaaa", "000000ff000e00a0a0", "gg00000ff00eee00a0",
                          "g0hhh000f0h00e00a0", "0000hhh00hhhh00aaa", "0iii00hhhh00h0aaa0",
                          "ii000j00h00k00a000", "i0l0m0nn00kk0o00pp"])
    return truth, prediction


STARDIST = {  # case: (n_true, n_pred, {threshold: MATCHING_FIELDS})
    "mixed": (4, 5, {
        0.1: (3, 2, 1, 0.6, 0.75, 0.5, 0.6666666666666666, 0.5428571701049805,
              0.723809560139974, 0.48253970675998265),
        0.5: (3, 2, 1, 0.6, 0.75, 0.5, 0.6666666666666666, 0.5428571701049805,
              0.723809560139974, 0.48253970675998265),
        0.6: (2, 3, 2, 0.4, 0.5, 0.2857142857142857, 0.4444444444444444, 0.4000000059604645,
              0.800000011920929, 0.3555555608537462),
        0.7: (1, 4, 3, 0.2, 0.25, 0.125, 0.2222222222222222, 0.25, 1.0, 0.2222222222222222),
        0.9: (1, 4, 3, 0.2, 0.25, 0.125, 0.2222222222222222, 0.25, 1.0, 0.2222222222222222)}),
    "tie": (1, 2, {
        0.5: (1, 1, 0, 0.5, 1.0, 0.5, 0.6666666666666666, 0.5, 0.5, 0.3333333333333333),
        0.55: (0, 2, 1, 0, 0, 0, 0, 0.0, 0.0, 0.0)}),
    "assignment": (2, 2, {
        0.25: (2, 0, 0, 1.0, 1.0, 1.0, 1.0, 0.2970588207244873, 0.2970588207244873,
               0.2970588207244873),
        # one match: truth 1 with prediction 2 (IoU 0.3), not with prediction 1 (IoU 7/15),
        # because StarDist's tie-break sums the IoUs of all assigned pairs, 0.3 + 5/17 > 7/15
        0.3: (1, 1, 1, 0.5, 0.5, 0.3333333333333333, 0.5, 0.15000000596046448,
              0.30000001192092896, 0.15000000596046448),
        0.5: (0, 2, 2, 0, 0, 0, 0, 0.0, 0.0, 0.0)}),
    "edge": (2, 2, {
        0.7: (2, 0, 0, 1.0, 1.0, 1.0, 1.0, 0.7250000238418579, 0.7250000238418579,
              0.7250000238418579),
        0.75: (1, 1, 1, 0.5, 0.5, 0.3333333333333333, 0.5, 0.375, 0.75, 0.375),
        0.9: (0, 2, 2, 0, 0, 0, 0, 0.0, 0.0, 0.0)}),
    "crowded": (21, 25, {
        0.1: (13, 12, 8, 0.52, 0.6190476190476191, 0.3939393939393939, 0.5652173913043478,
              0.19451913237571716, 0.3142232161301833, 0.17760442650836447),
        0.25: (9, 16, 12, 0.36, 0.42857142857142855, 0.24324324324324326, 0.391304347826087,
               0.15924036502838135, 0.37156086497836643, 0.14539338194805643),
        0.3: (7, 18, 14, 0.28, 0.3333333333333333, 0.1794871794871795, 0.30434782608695654,
              0.13373015820980072, 0.4011904852730887, 0.1221014520396357),
        0.5: (2, 23, 19, 0.08, 0.09523809523809523, 0.045454545454545456, 0.08695652173913043,
              0.05238095298409462, 0.550000011920929, 0.04782608799312426),
        0.75: (0, 25, 21, 0, 0, 0, 0, 0.0, 0.0, 0.0)}),
}

STARDIST_DATASET = (10, 12, {  # matching_dataset over mixed, tie, assignment, edge, the empties
    0.1: (8, 4, 2, 0.6666666666666666, 0.8, 0.5714285714285714, 0.7272727272727273,
          0.4715546667575836, 0.5894433259963989, 0.42868605527010833),
    0.25: (8, 4, 2, 0.6666666666666666, 0.8, 0.5714285714285714, 0.7272727272727273,
           0.4715546667575836, 0.5894433259963989, 0.42868605527010833),
    0.3: (7, 5, 3, 0.5833333333333334, 0.7, 0.4666666666666667, 0.6363636363636364,
          0.44214287400245667, 0.6316326686314174, 0.4019480618563565),
    0.5: (6, 6, 4, 0.5, 0.6, 0.375, 0.5454545454545454, 0.4121428430080414,
          0.6869047482808431, 0.37467531724409625),
    0.55: (5, 7, 5, 0.4166666666666667, 0.5, 0.29411764705882354, 0.45454545454545453,
           0.3621428608894348, 0.7242857456207276, 0.32922079346396704),
    0.6: (4, 8, 6, 0.3333333333333333, 0.4, 0.2222222222222222, 0.36363636363636365,
          0.3050000071525574, 0.7625000476837158, 0.2772727446122603),
    0.7: (3, 9, 7, 0.25, 0.3, 0.15789473684210525, 0.2727272727272727, 0.24500000476837158,
          0.8166666825612386, 0.22272727706215598),
    0.75: (2, 10, 8, 0.16666666666666666, 0.2, 0.1, 0.18181818181818182, 0.17499999701976776,
           0.875, 0.1590909090909091),
    0.9: (1, 11, 9, 0.08333333333333333, 0.1, 0.047619047619047616, 0.09090909090909091,
          0.10000000149011612, 1.0, 0.09090909090909091)})


def _assert_stardist(results, expected):
    n_true, n_pred, table = expected
    assert [result.thresh for result in results] == list(table)
    for result, numbers in zip(results, table.values()):
        assert (result.criterion, result.n_true, result.n_pred) == ("iou", n_true, n_pred)
        assert (result.tp, result.fp, result.fn) == numbers[:3]
        got = [getattr(result, field) for field in MATCHING_FIELDS[3:]]
        assert got == pytest.approx(numbers[3:], rel=1e-6, abs=1e-7), result.thresh


@pytest.mark.parametrize("case", sorted(STARDIST))
def test_matching_equals_stardist(case):
    truth, prediction = globals()[f"_{case}"]()
    _assert_stardist(matching(truth, prediction, tuple(STARDIST[case][2])), STARDIST[case])


def test_matching_dataset_equals_stardist():
    pairs = [_mixed(), _tie(), _assignment(), _edge(), *_empties()]
    results = matching_dataset([truth for truth, _ in pairs], [pred for _, pred in pairs],
                               tuple(STARDIST_DATASET[2]))
    _assert_stardist(results, STARDIST_DATASET)


def test_matching_of_empty_images_is_zero_as_in_stardist():
    # StarDist 0.9.2: (tp, fp, fn, n_true, n_pred) as below and 0 for every ratio, also for two
    # empty images (its precision, recall, ... are 0 whenever tp is 0)
    counts = [(0, 0, 0, 0, 0), (0, 1, 0, 0, 1), (0, 0, 1, 1, 0)]
    for (truth, prediction), expected in zip(_empties(), counts):
        result = matching(truth, prediction, 0.5)
        assert (result.tp, result.fp, result.fn, result.n_true, result.n_pred) == expected
        assert (result.precision, result.recall, result.accuracy, result.f1,
                result.panoptic_quality, result.mean_matched_score,
                result.mean_true_score) == (0, 0, 0, 0, 0, 0, 0)


def test_matching_hand_worked_one_to_many_and_threshold_edges():
    truth, prediction = _mixed()
    at_half = matching(truth, prediction, 0.5)
    # true 3 (28 px) is covered by predictions 9 (12 px, IoU 3/7) and 4 (16 px, IoU 4/7): only 4
    # matches, 9 is a false positive like 2; 42 is missed; 7-1 (IoU 3/5) and 5-8 (1) match
    assert (at_half.tp, at_half.fp, at_half.fn) == (3, 2, 1)
    assert at_half.mean_matched_score == pytest.approx((3 / 5 + 4 / 7 + 1) / 3)
    assert at_half.panoptic_quality == pytest.approx((3 / 5 + 4 / 7 + 1) / (3 + 1 + 0.5))
    assert at_half.accuracy == 3 / 6 and at_half.f1 == 6 / 9
    # an IoU equal to the threshold is a match, the next threshold up is not
    edges = matching(*_edge(), (0.7, 0.7000001, 0.75, 0.7500001))
    assert [result.tp for result in edges] == [2, 1, 1, 0]
    assert [result.tp for result in matching(*_tie(), (0.5, 0.5000001))] == [1, 0]
    # ties: either half of the true object may match, the numbers are the same
    tie = matching(*_tie(), 0.5)
    assert (tie.tp, tie.fp, tie.fn, tie.mean_matched_score) == (1, 1, 0, 0.5)


def test_matching_maximises_the_number_of_matches_first():
    at = matching(*_assignment(), (0.25, 0.3))
    assert at[0].tp == 2  # greedy (best IoU first) would match truth 1 - prediction 1 only
    assert at[0].mean_matched_score == pytest.approx((3 / 10 + 5 / 17) / 2)
    assert at[1].tp == 1 and at[1].mean_matched_score == pytest.approx(0.3)


def _brute_iou(truth, prediction):
    true_ids = [i for i in np.unique(truth) if i]
    pred_ids = [j for j in np.unique(prediction) if j]
    return np.array([[np.sum((truth == i) & (prediction == j))
                      / np.sum((truth == i) | (prediction == j)) for j in pred_ids]
                     for i in true_ids]).reshape(len(true_ids), len(pred_ids))


@pytest.mark.parametrize("seed", range(4))
def test_matching_counts_are_a_maximum_matching(seed):
    rng = np.random.default_rng(seed)
    truth = scipy.ndimage.label(rng.random((16, 16)) > 0.5)[0]
    shifted = scipy.ndimage.label(np.roll(truth, 1, 1 - seed % 2) > 0)[0]
    prediction = np.where(shifted > 0, shifted * 3 + 1, 0)  # labels 4, 7, 10, ...
    prediction[rng.random(truth.shape) > 0.8] = 0
    iou = _brute_iou(truth, prediction)
    for result in matching(truth, prediction, (0.2, 0.4, 0.5, 0.7)):
        graph = scipy.sparse.csr_matrix((iou >= result.thresh).astype(np.int8))
        best = np.count_nonzero(scipy.sparse.csgraph.maximum_bipartite_matching(graph) >= 0)
        assert result.tp == best
        assert (result.n_true, result.n_pred) == iou.shape
        assert result.fp == iou.shape[1] - best and result.fn == iou.shape[0] - best
        if result.thresh > 0.5:  # the matches are unique: every pair over the threshold
            assert result.mean_matched_score * result.tp == pytest.approx(
                iou[iou >= result.thresh].sum())


def test_matching_ignores_label_values_and_takes_3d():
    truth, prediction = _mixed()
    shuffled = np.zeros_like(prediction)
    for new, old in zip([11, 500, 2, 77, 3], [1, 2, 4, 8, 9]):
        shuffled[prediction == old] = new
    assert matching(truth, shuffled) == matching(truth, prediction)
    assert matching(truth.astype(np.uint16), prediction.astype(bool).astype(np.uint8), 0.1).tp == 1
    volume = matching(np.stack([truth, truth]), np.stack([prediction, prediction]), 0.5)
    assert (volume.tp, volume.fp, volume.fn) == (3, 2, 1)


def test_matching_returns_one_result_or_one_per_threshold():
    truth, prediction = _mixed()
    single = matching(truth, prediction, 0.5)
    assert isinstance(single, Matching) and single.thresh == 0.5
    default = matching(truth, prediction)
    assert isinstance(default, tuple) and [m.thresh for m in default] == list(DEFAULT_THRESHOLDS)
    assert default[0] == single
    assert matching(truth, prediction, np.array([0.5]))[0] == single
    assert single._asdict()["panoptic_quality"] == single.panoptic_quality
    assert matching(truth, prediction, 1.0).tp == 1  # only the exact copy reaches IoU 1


def test_matching_dataset_sums_counts_not_ratios():
    pairs = [_mixed(), _edge()]
    pooled = matching_dataset([t for t, _ in pairs], [p for _, p in pairs], 0.5)
    each = [matching(t, p, 0.5) for t, p in pairs]
    assert pooled.tp == sum(m.tp for m in each) and pooled.n_pred == sum(m.n_pred for m in each)
    assert (pooled.tp, pooled.fp, pooled.fn) == (5, 2, 1)
    assert pooled.f1 == pytest.approx(2 * 5 / (2 * 5 + 2 + 1))  # not the mean of 2/3 and 1
    assert pooled.f1 != pytest.approx(np.mean([m.f1 for m in each]))
    assert pooled.mean_matched_score == pytest.approx((3 / 5 + 4 / 7 + 1 + 0.7 + 0.75) / 5)
    assert isinstance(matching_dataset([_tie()[0]], [_tie()[1]]), tuple)


@pytest.mark.parametrize("thresholds", [0, 0.0, -0.1, 1.5, math.nan, (), (0.5, 2),
                                        [[0.5]], "0.5", None])
def test_matching_rejects_thresholds_outside_0_1(thresholds):
    with pytest.raises(ValueError, match=r"^thresholds must be numbers in \(0, 1\], got"):
        matching(*_tie(), thresholds)
    with pytest.raises(ValueError, match=r"^thresholds must be numbers in \(0, 1\]"):
        matching_dataset([_tie()[0]], [_tie()[1]], thresholds)


def test_matching_rejects_bad_label_images():
    truth, prediction = _tie()
    with pytest.raises(ValueError, match=r"^ground_truth and prediction must be 2D or 3D label "
                                         r"images of one shape, got \(4, 6\) and \(4, 5\)\.$"):
        matching(truth, prediction[:, :5])
    with pytest.raises(ValueError, match=r"^prediction must hold integer labels, got dtype "
                                         r"float64\.$"):
        matching(truth, prediction + 0.5)
    with pytest.raises(ValueError, match=r"^ground_truth has negative labels"):
        matching(-truth, prediction)
    with pytest.raises(ValueError, match="2D or 3D"):
        matching(truth[0], prediction[0])
    with pytest.raises(ValueError, match=r"^image 1: prediction must hold integer labels"):
        matching_dataset([truth, truth], [prediction, prediction * 0.5])
    with pytest.raises(ValueError, match=r"one image each, got 2 and 1"):
        matching_dataset([truth, truth], [prediction])
    with pytest.raises(ValueError, match=r"^ground_truths is empty"):
        matching_dataset([], [])


# --- SEG over a dataset ----------------------------------------------------------------------

def _nine_cells():
    labels = np.zeros((30, 30), np.int32)
    for index, (y, x) in enumerate(itertools.product(range(0, 30, 10), repeat=2)):
        labels[y + 2:y + 8, x + 2:x + 8] = index + 1
    return labels


def test_seg_dataset_pools_over_reference_objects():
    missed = np.zeros((30, 30), np.int32)
    missed[5:15, 5:15] = 1
    truths, predictions = [missed, _nine_cells()], [np.zeros_like(missed), _nine_cells()]
    assert [seg_score(t, p) for t, p in zip(truths, predictions)] == [0.0, 1.0]
    assert seg_dataset(truths, predictions) == pytest.approx(0.9)  # 9 of 10 objects, not 0.5
    empty = np.zeros((4, 4), np.int32)
    assert seg_dataset([empty, missed], [empty, missed]) == 1.0  # an empty image adds nothing
    assert math.isnan(seg_dataset([empty], [empty]))
    with pytest.raises(ValueError, match=r"^image 0: ground_truth and prediction must be 2D"):
        seg_dataset([empty], [empty[:2]])
    with pytest.raises(ValueError, match="one image each"):
        seg_dataset([empty], [])


# --- ISBI 2012 ranking form of the Rand error --------------------------------------------------

def test_rand_error_thresholds_takes_the_best_threshold():
    truth = np.zeros((8, 13), np.int32)
    truth[1:7, 1:6], truth[1:7, 7:12] = 1, 2
    probability = np.full(truth.shape, 0.05)
    probability[truth > 0] = 0.9
    probability[1:7, 6] = 0.45  # a weak membrane between the cells: they join below 0.45
    error, threshold = rand_error_thresholds(truth, probability)
    assert (error, threshold) == (0.0, 0.5)  # the lowest of the tied thresholds 0.5..0.8
    merged = rand_error(truth, scipy.ndimage.label(probability > 0.4)[0])
    assert merged > 0.3 and rand_error_thresholds(truth, probability, (0.1, 0.4)) == (
        pytest.approx(merged), 0.1)
    assert rand_error_thresholds(truth, probability, [0.95]) == (1.0, 0.95)  # no cell left


@pytest.mark.parametrize("seed", range(3))
def test_rand_error_thresholds_equals_pair_counting(seed):
    rng = np.random.default_rng(seed)
    truth = _random_labels(seed, (5, 6), 3)
    probability = np.clip((truth > 0) * 0.6 + rng.random(truth.shape) * 0.5, 0, 1)
    errors = [_rand_error_by_pairs(scipy.ndimage.label(probability > t)[0], truth)
              for t in ISBI_THRESHOLDS]
    error, threshold = rand_error_thresholds(truth, probability)
    assert error == pytest.approx(min(errors))
    assert errors[ISBI_THRESHOLDS.index(threshold)] == pytest.approx(min(errors))


def test_rand_error_thresholds_rejects_bad_input_and_is_nan_without_cells():
    truth = np.zeros((4, 5), np.int32)
    assert all(math.isnan(value) for value in rand_error_thresholds(truth, np.zeros((4, 5))))
    truth[1:3, 1:3] = 1
    with pytest.raises(ValueError, match=r"^ground_truth and cell_probability must be 2D images "
                                         r"of one shape, got \(4, 5\) and \(5, 4\)\.$"):
        rand_error_thresholds(truth, np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"^cell_probability must hold probabilities in \[0, 1\], "
                                         r"got values from 0\.0 to 1\.5\.$"):
        rand_error_thresholds(truth, np.where(truth, 1.5, 0.0))
    with pytest.raises(ValueError, match=r"^cell_probability must hold probabilities"):
        rand_error_thresholds(truth, np.full((4, 5), math.nan))
    with pytest.raises(ValueError, match=r"^thresholds must be numbers in \[0, 1\]"):
        rand_error_thresholds(truth, np.zeros((4, 5)), (0.5, 1.1))
    with pytest.raises(ValueError, match=r"^ground_truth must hold integer labels"):
        rand_error_thresholds(truth * 1.0, np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"^ground_truth must be a 2D label image"):
        rand_error_thresholds(truth[0], np.zeros(5))


# --- variation of information ------------------------------------------------------------------

def _vi_by_entropies(truth, prediction):
    """H(P|T) + H(T|P) in bits over the true objects' pixels, predicted background as singletons."""
    keep = truth.ravel() > 0
    t, p = truth.ravel()[keep], prediction.ravel()[keep].copy()
    p[p == 0] = p.max() + 1 + np.arange(np.count_nonzero(p == 0))

    def entropy(*labels):
        _, counts = np.unique(np.stack(labels), axis=1, return_counts=True)
        q = counts / counts.sum()
        return -np.sum(q * np.log2(q))

    return 2 * entropy(t, p) - entropy(t) - entropy(p)


def test_variation_of_information_hand_numbers():
    truth = np.array([[1, 1, 2, 2, 0, 0]])
    assert variation_of_information_error(truth, truth) == 0.0
    splits, merge = np.array([[1, 2, 3, 4, 0, 0]]), np.array([[1, 1, 1, 1, 0, 0]])
    assert variation_of_information_error(truth, splits) == pytest.approx(1.0)  # H(P|T) = 1 bit
    assert variation_of_information_error(truth, merge) == pytest.approx(1.0)  # H(T|P) = 1 bit
    assert variation_of_information_error(truth, np.array([[1, 1, 2, 2, 3, 4]])) == 0.0
    # predicted background inside a cell: two singletons, H = 1.5 bits, not 1 bit as one segment
    assert variation_of_information_error(np.array([[1, 1, 1, 1]]),
                                          np.array([[1, 1, 0, 0]])) == pytest.approx(1.5)
    assert math.isnan(variation_of_information_error(truth * 0, truth))


@pytest.mark.parametrize("seed", range(3))
def test_variation_of_information_equals_entropies(seed):
    truth, prediction = _random_labels(seed, (9, 11), 5), _random_labels(seed + 7, (9, 11), 4)
    assert variation_of_information_error(truth, prediction) == pytest.approx(
        _vi_by_entropies(truth, prediction))


# --- the report --------------------------------------------------------------------------------

def _samples(pairs):
    """Samples whose image is the prediction itself, for ``predict_labels=lambda image: image``."""
    return [SimpleNamespace(image=prediction, labels=truth, path=f"{index}.png")
            for index, (truth, prediction) in enumerate(pairs)]


def test_evaluate_labels_has_every_column():
    truth, prediction = _mixed()
    row = evaluate_labels(truth, prediction)
    assert list(row) == list(METRICS)
    results = matching(truth, prediction)
    assert (row["n_true"], row["n_pred"]) == (4, 5)
    assert row["f1_50"] == results[0].f1 and row["ap_75"] == results[5].accuracy
    assert row["ap_50_95"] == pytest.approx(np.mean([m.accuracy for m in results]))
    assert row["pq_50"] == results[0].panoptic_quality and row["f1_75"] == results[5].f1
    assert row["seg"] == seg_score(truth, prediction)
    assert row["vi_error"] == variation_of_information_error(truth, prediction)
    assert row["rand_error"] == rand_error(truth, prediction)
    probability = (prediction > 0) * 0.8
    with_map = evaluate_labels(truth, prediction, cell_probability=probability)
    assert list(with_map) == [*METRICS, *PROBABILITY_METRICS]
    assert (with_map["rand_error_isbi"], with_map["rand_threshold"]) == rand_error_thresholds(
        truth, probability)


def test_report_pools_the_dataset_row():
    missed = np.zeros((30, 30), np.int32)
    missed[5:15, 5:15] = 1
    report = evaluate_samples(lambda image: image,
                              _samples([(missed, missed * 0), (_nine_cells(), _nine_cells())]))
    assert [row["seg"] for row in report.rows] == [0.0, 1.0]
    assert report.dataset["seg"] == pytest.approx(0.9) and report.mean["seg"] == 0.5
    assert [row["f1_50"] for row in report.rows] == [0.0, 1.0]
    assert report.dataset["f1_50"] == pytest.approx(18 / 19)  # tp 9, fp 0, fn 1
    assert report.dataset["ap_50"] == report.dataset["ap_50_95"] == pytest.approx(0.9)
    assert report.dataset["pq_50"] == pytest.approx(9 / 9.5)
    assert (report.dataset["n_true"], report.dataset["n_pred"]) == (10, 9)
    for name in ("rand_error", "vi_error", "warping_error", "iou_foreground", "dice_background"):
        assert report.dataset[name] == pytest.approx(report.mean[name])
    assert report.dataset["rand_error"] == pytest.approx(0.5)  # 1 and 0
    assert math.isnan(evaluate_samples(lambda image: image, _samples([(missed * 0,) * 2]))
                      .dataset["seg"])


def test_report_isbi_rand_uses_one_threshold_for_the_dataset():
    truth = np.zeros((8, 13), np.int32)
    truth[1:7, 1:6], truth[1:7, 7:12] = 1, 2
    maps = {}
    for name, (cell, membrane) in {"low.png": (0.35, 0.25), "high.png": (0.95, 0.75)}.items():
        maps[name] = np.full(truth.shape, 0.05)
        maps[name][truth > 0] = cell
        maps[name][1:7, 6] = membrane  # the two cells are apart for membrane <= t < cell only
    samples = [SimpleNamespace(image=name, labels=truth, path=name) for name in maps]
    report = evaluate_probabilities(
        lambda name: np.stack([1 - maps[name], maps[name]], -1), samples,
        to_labels=lambda p: scipy.ndimage.label(p[..., 1] > 0.5)[0])
    assert [(row["rand_error_isbi"], row["rand_threshold"]) for row in report.rows] == [
        (0.0, 0.3), (0.0, 0.8)]
    curves = np.array([[rand_error(truth, scipy.ndimage.label(m > t)[0]) for t in ISBI_THRESHOLDS]
                       for m in maps.values()])
    best = int(np.argmin(curves.mean(0)))
    assert report.dataset["rand_error_isbi"] == pytest.approx(curves.mean(0)[best])
    assert report.dataset["rand_error_isbi"] > 0.1  # no one threshold suits both images
    assert report.dataset["rand_threshold"] == ISBI_THRESHOLDS[best]
    assert report.rows[0]["n_pred"] == 0  # to_labels made the cells: none over 0.5 in low.png


def test_report_table_and_files(tmp_path):
    truth = _two_cells()
    merged = (truth > 0).astype(int)
    merged[3:17, 9:11] = 1
    report = evaluate_samples(lambda image: image,
                              _samples([(truth, truth), (truth, merged), (truth * 0, truth)]))
    rows = report.rows
    assert rows[0]["seg"] == 1.0 and rows[0]["warping_error"] == 0.0
    # one predicted object of 14x20 px covers both cells (14x7 and 14x11): (98 + 154) / 280 / 2
    assert rows[1]["seg"] == pytest.approx((98 / 280 + 154 / 280) / 2)
    assert math.isnan(rows[2]["seg"]) and math.isnan(rows[2]["rand_error"])
    assert report.columns == list(METRICS)
    lines = report.table().splitlines()
    assert lines[0].split() == list(METRICS)
    assert [line.split()[0] for line in lines[1:6]] == ["0.png", "1.png", "2.png", "mean",
                                                         "dataset"]
    assert lines[5].split()[1:3] == ["4", "5"]  # object counts summed over the images
    assert lines[4].split()[1:3] == ["1.3333", "1.6667"]
    assert " ".join(lines[6:]) == POOLING
    csv_path, json_path = report.save(tmp_path)
    with open(csv_path) as file:
        saved = list(csv.DictReader(file))
    assert [row["image"] for row in saved] == ["0.png", "1.png", "2.png", "mean", "dataset"]
    assert list(saved[0]) == ["image", *METRICS]
    assert float(saved[3]["seg"]) == pytest.approx(report.mean["seg"])
    assert float(saved[4]["f1_50"]) == pytest.approx(report.dataset["f1_50"])
    document = json.loads(open(json_path).read())  # strict JSON: NaN is null
    assert document["images"][2]["seg"] is None and document["pooling"] == POOLING
    assert document["dataset"]["f1_50"] == pytest.approx(report.dataset["f1_50"])
    assert document["mean"].keys() == set(METRICS)
    with pytest.raises(FileExistsError, match="evaluation.csv"):
        report.save(tmp_path)
    assert report.save(tmp_path, overwrite=True) == (csv_path, json_path)


def test_report_from_rows_alone_uses_the_mean():
    rows = [{"image": "a.png", "seg": 0.25, "n_true": 1}, {"image": "b.png", "seg": 0.75,
                                                           "n_true": 3}]
    report = EvaluationReport(rows)
    assert report.dataset == report.mean == {"seg": 0.5, "n_true": 2.0}


def test_evaluate_model_on_samples():
    model = build_unet((None, None, 1), 2, filters=4, depth=2)
    truth = _two_cells()
    samples = [SimpleNamespace(image=(truth > 0) * 200, labels=truth, path=f"{i}.png")
               for i in range(2)]
    report = evaluate_model(model, samples, tile_size=48)
    assert [row["image"] for row in report.rows] == ["0.png", "1.png"]
    assert report.columns == [*METRICS, *PROBABILITY_METRICS]
    assert all(0 <= row["iou_foreground"] <= 1 and 0 <= row["rand_error_isbi"] <= 1
               and row["rand_threshold"] in ISBI_THRESHOLDS for row in report.rows)
    assert report.dataset["n_true"] == 4


def test_evaluate_rejects_bad_predictions():
    truth = _two_cells()
    with pytest.raises(ValueError, match="no samples"):
        evaluate_samples(lambda image: image, [])
    bad = SimpleNamespace(image=truth, labels=truth[:5], path="bad.png")
    with pytest.raises(ValueError, match="bad.png"):
        evaluate_samples(lambda image: image, [bad])
    sample = SimpleNamespace(image=truth, labels=truth, path="a.png")
    with pytest.raises(ValueError, match=r"^probabilities of 'a.png' are \(20, 23\) pixels"):
        evaluate_probabilities(lambda image: np.zeros((20, 23, 2)), [sample],
                               to_labels=lambda p: truth)
    with pytest.raises(ValueError, match=r"^probabilities must be \(height, width, classes\)"):
        evaluate_probabilities(lambda image: np.zeros((20, 24)), [sample],
                               to_labels=lambda p: truth)


def test_best_min_size_takes_the_best_f1_the_smallest_on_a_tie_and_skips_unlabelled():
    from keras_unet.evaluation import best_min_size

    truth = np.zeros((30, 30), "int32")
    truth[2:12, 2:12], truth[20:23, 20:23] = 1, 2  # a 100 px cell and a 9 px one
    speck = truth > 0
    speck[15:17, 2:4] = True  # a 4 px false positive
    probabilities = np.eye(2)[speck.astype(int)]
    size, f1 = best_min_size([truth], [probabilities], candidates=(0, 5, 9, 10))
    assert size == 5 and f1[5] == f1[9] == 1.0 and f1[0] < 1.0 and f1[10] < 1.0
    partial = truth.copy()
    partial[14:18, 0:6] = -1  # the speck lies where nothing was annotated
    assert best_min_size([partial], [probabilities], candidates=(0, 5)) == (0, {0: 1.0, 5: 1.0})
