"""The evaluation measures against hand-computed numbers and brute-force definitions."""

import csv
import itertools
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.ndimage

from keras_unet import build_unet
from keras_unet.evaluation import (METRICS, EvaluationReport, _neighbourhood_codes,
                                   _simple_point_table, evaluate_labels, evaluate_model,
                                   evaluate_samples, pixel_dice, pixel_iou, rand_error,
                                   seg_score, warp, warping_error)


def _random_labels(seed, shape=(12, 15), objects=4):
    return np.random.default_rng(seed).integers(0, objects + 1, shape)


@pytest.mark.parametrize("seed", range(3))
def test_pixel_iou_and_dice_per_class(seed):
    prediction, truth = _random_labels(seed), _random_labels(seed + 10)
    iou, dice = pixel_iou(prediction, truth), pixel_dice(prediction, truth)
    for cls, (p, t) in enumerate([(prediction == 0, truth == 0), (prediction > 0, truth > 0)]):
        both = np.sum(p & t)
        assert iou[cls] == pytest.approx(both / np.sum(p | t))
        assert dice[cls] == pytest.approx(2 * both / (p.sum() + t.sum()))
    three = pixel_iou(prediction % 3, truth % 3, num_classes=3)
    assert three[2] == pytest.approx(np.sum((prediction % 3 == 2) & (truth % 3 == 2))
                                     / np.sum((prediction % 3 == 2) | (truth % 3 == 2)))


def test_pixel_metrics_hand_numbers_and_absent_classes():
    prediction = np.array([[0, 1, 1, 0]])
    truth = np.array([[0, 1, 0, 0]])
    assert pixel_iou(prediction, truth).tolist() == [2 / 3, 1 / 2]
    assert pixel_dice(prediction, truth).tolist() == [0.8, 2 / 3]
    empty = pixel_iou(np.zeros((2, 2), int), np.zeros((2, 2), int))
    assert empty[0] == 1.0 and math.isnan(empty[1])
    with pytest.raises(ValueError, match="num_classes=3"):
        pixel_iou(np.array([[3]]), np.array([[0]]), num_classes=3)


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
    assert rand_error(prediction, truth) == pytest.approx(_rand_error_by_pairs(prediction, truth))
    assert rand_error(truth, truth) == 0.0


def test_rand_error_takes_prediction_first():
    truth = np.array([[1, 1, 2, 2]])
    merged = np.array([[1, 1, 1, 1]])
    # pairs joined in the prediction: 12, of which 4 right; in the truth: 4: F = 8 / 16
    assert rand_error(merged, truth) == pytest.approx(0.5)
    assert rand_error(truth, merged) == pytest.approx(0.5)
    split = np.array([[1, 2, 3, 4]])
    assert rand_error(split, truth) == pytest.approx(1.0)


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
    assert rand_error(holed, truth) == pytest.approx(_rand_error_by_pairs(holed, truth))
    assert rand_error(holed, truth) < 0.02
    assert rand_error(np.zeros_like(truth), truth) == 1.0


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
        assert warping_error(moved, truth) == 0.0
    grown = truth.copy()
    grown[2:18, 1:8] = 1  # cell 1 grows by up to 2 px towards the border: still one cell
    assert warping_error(grown, truth) == 0.0


def test_warping_error_counts_merges_splits_and_missing_cells():
    truth = _two_cells()
    pixels = truth.size
    merged = (truth > 0).astype(int)
    merged[3:17, 9:11] = 1  # the gap is filled: the two cells merge into one
    # the reference warps over the gap up to a seam of 14 px, each of which would join the cells
    assert warping_error(merged, truth) == pytest.approx(14 / pixels)
    split = truth.copy()
    split[9, 2:9] = 0  # cell 1 is cut in two by a line: all but its last pixel warp away
    assert warping_error(split, truth) == pytest.approx(1 / pixels)
    missing = truth.copy()
    missing[truth == 2] = 0
    assert warping_error(missing, truth) == pytest.approx(1 / pixels)
    hole = truth.copy()
    hole[8:11, 4:7] = 0  # a hole appears in cell 1: no pixel of it can open without a hole
    assert warping_error(hole, truth) == pytest.approx(9 / pixels)


def test_touching_instances_count_as_separate_cells():
    truth = _two_cells(gap_width=0)  # labels 1 and 2 touch
    merged = (truth > 0).astype(int)
    assert warping_error(merged, truth) > 0
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
    assert seg_score(prediction, truth) == pytest.approx((0.75 + 0 + 1) / 3)
    assert math.isnan(seg_score(prediction, np.zeros_like(truth)))


@pytest.mark.parametrize("seed", range(3))
def test_seg_score_equals_definition(seed):
    rng = np.random.default_rng(seed)
    truth = scipy.ndimage.label(rng.random((30, 30)) > 0.4)[0]
    prediction = scipy.ndimage.label(scipy.ndimage.binary_opening(truth > 0))[0]
    assert seg_score(prediction, truth) == pytest.approx(_seg_by_definition(prediction, truth))


@pytest.mark.parametrize("metric", [pixel_iou, rand_error, warping_error, seg_score])
def test_metrics_reject_mismatched_or_non_label_images(metric):
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(4, 3\)"):
        metric(np.zeros((3, 4), int), np.zeros((4, 3), int))
    with pytest.raises(ValueError, match="integer labels"):
        metric(np.zeros((3, 4)), np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="negative"):
        metric(np.zeros((3, 4), int), -np.ones((3, 4), int))


def test_evaluate_labels_and_report(tmp_path):
    truth = _two_cells()
    merged = (truth > 0).astype(int)
    merged[3:17, 9:11] = 1
    rows = [{"image": "same.png", **evaluate_labels(truth, truth)},
            {"image": "merged.png", **evaluate_labels(merged, truth)}]
    assert rows[0]["seg"] == 1.0 and rows[0]["warping_error"] == 0.0
    # one predicted object of 14x20 px covers both cells (14x7 and 14x11): (98 + 154) / 280 / 2
    assert rows[1]["seg"] == pytest.approx((98 / 280 + 154 / 280) / 2)
    report = EvaluationReport(rows)
    assert report.mean["seg"] == pytest.approx((1.0 + rows[1]["seg"]) / 2)
    table = report.table()
    assert "merged.png" in table and table.splitlines()[-1].startswith("mean")
    csv_path, json_path = report.save(tmp_path)
    with open(csv_path) as file:
        saved = list(csv.DictReader(file))
    assert [row["image"] for row in saved] == ["same.png", "merged.png", "mean"]
    assert float(saved[2]["seg"]) == pytest.approx(report.mean["seg"])
    assert json.loads(open(json_path).read())["mean"].keys() == set(METRICS)
    with pytest.raises(FileExistsError, match="evaluation.csv"):
        report.save(tmp_path)


def test_evaluate_model_on_samples():
    model = build_unet((None, None, 1), 2, filters=4, depth=2)
    truth = _two_cells()
    samples = [SimpleNamespace(image=(truth > 0) * 200, labels=truth, path=f"{i}.png")
               for i in range(2)]
    report = evaluate_model(model, samples, tile_size=48)
    assert [row["image"] for row in report.rows] == ["0.png", "1.png"]
    assert all(0 <= row["iou_foreground"] <= 1 for row in report.rows)
    with pytest.raises(ValueError, match="no samples"):
        evaluate_samples(lambda image: image, [])
    bad = SimpleNamespace(image=truth, labels=truth[:5], path="bad.png")
    with pytest.raises(ValueError, match="bad.png"):
        evaluate_samples(lambda image: image, [bad])
