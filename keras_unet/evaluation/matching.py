"""Objects matched one-to-one by IoU (F1, AP, panoptic quality) as StarDist matches them, and
the SEG measure of the Cell Tracking Challenge.

Example:
    >>> truth = np.array([[1, 1, 0, 2]])
    >>> matching(truth, truth, 0.5).f1, seg_score(truth, truth)
    (1.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import scipy.optimize

from keras_unet.errors import InputError
from keras_unet.evaluation.label_images import check_label_images, check_pair, check_thresholds

DEFAULT_THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
"""IoU thresholds of :func:`matching`: 0.5 to 0.95 in steps of 0.05, as the Data Science Bowl."""


def _sequential(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """The labels renumbered 1..N in order (0 stays background), flattened, and N."""
    values, inverse = np.unique(labels, return_inverse=True)
    if not values.size:
        return inverse.ravel(), 0
    background = bool(values[0] == 0)
    return inverse.ravel() + (not background), len(values) - background


def overlap_table(ground_truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Contingency table: ``[i, j]`` = pixels of true object i in predicted object j (0: none).

    Objects are numbered as :func:`_sequential` renumbers them; the table has one row per true
    object and one column per predicted object, plus row and column 0 for the backgrounds.
    """
    truth, n_true = _sequential(ground_truth)
    predicted, n_pred = _sequential(prediction)
    table = np.bincount(truth * (n_pred + 1) + predicted, minlength=(n_true + 1) * (n_pred + 1))
    return table.reshape(n_true + 1, n_pred + 1)


def pair_iou(overlap: np.ndarray) -> np.ndarray:
    """IoU of every (true, predicted) pair of objects, from the overlap table."""
    intersection = overlap[1:, 1:].astype(np.float64)
    union = overlap.sum(1)[1:, None] + overlap.sum(0)[None, 1:] - intersection
    return intersection / union  # a union holds at least one object: never 0


def match_pairs(iou: np.ndarray, thresholds: Sequence[float]
                ) -> tuple[np.ndarray, np.ndarray]:
    """True positives and the sum of their IoUs at every threshold, matched as StarDist does.

    One linear assignment over all pairs with cost ``-[IoU >= t] - IoU / (2 n)``, ``n`` the
    number of pairs an assignment makes: each pair reaching the threshold is worth 1 and the
    IoUs of all assigned pairs add less than 1/2, so the number of matches comes first and the
    IoU sum only breaks ties. A pair is a true positive when its IoU is at least the threshold.
    """
    tp, iou_sum = np.zeros(len(thresholds), np.int64), np.zeros(len(thresholds))
    pairs = min(iou.shape)
    for index, threshold in enumerate(thresholds):
        passing = iou >= threshold
        if pairs and passing.any():
            rows, cols = scipy.optimize.linear_sum_assignment(-passing.astype(np.float64)
                                                              - iou / (2 * pairs))
            matched = iou[rows, cols]
            matched = matched[matched >= threshold]
            tp[index], iou_sum[index] = matched.size, matched.sum()
    return tp, iou_sum


class Matching(NamedTuple):
    """Object matching statistics at one IoU threshold, as ``stardist.matching.matching``'s.

    Attributes:
        criterion: ``"iou"``, the matching criterion.
        thresh: the IoU threshold: a matched pair with IoU >= ``thresh`` is a true positive.
        fp, tp, fn: predicted objects left unmatched, matched pairs, true objects left unmatched.
        precision, recall: ``tp / n_pred`` and ``tp / n_true``.
        accuracy: ``tp / (tp + fp + fn)``, the "average precision" of the Data Science Bowl 2018
            (Caicedo et al., Nat. Methods 2019) and of StarDist.
        f1: ``2 tp / (2 tp + fp + fn)``.
        n_true, n_pred: objects in the ground truth and in the prediction.
        mean_true_score: sum of the matched IoUs / ``n_true``.
        mean_matched_score: mean IoU of the matched pairs.
        panoptic_quality: sum of the matched IoUs / ``(tp + fp / 2 + fn / 2)`` (Kirillov et al.,
            "Panoptic segmentation", CVPR 2019).

    Every ratio is 0 when ``tp`` is 0, even with no objects on either side, as StarDist has it.

    Example:
        >>> m = Matching("iou", 0.5, fp=0, tp=1, fn=1, precision=1.0, recall=0.5, accuracy=0.5,
        ...              f1=2 / 3, n_true=2, n_pred=1, mean_true_score=0.4,
        ...              mean_matched_score=0.8, panoptic_quality=0.8 / 1.5)
        >>> m.accuracy, m.mean_matched_iou, m._asdict()["n_true"]
        (0.5, 0.8, 2)
    """

    criterion: str
    thresh: float
    fp: int
    tp: int
    fn: int
    precision: float
    recall: float
    accuracy: float
    f1: float
    n_true: int
    n_pred: int
    mean_true_score: float
    mean_matched_score: float
    panoptic_quality: float

    @property
    def mean_matched_iou(self) -> float:
        """The mean IoU of the matched pairs: ``mean_matched_score`` (StarDist's name)."""
        return self.mean_matched_score


def statistics(thresholds: Sequence[float], n_true: int, n_pred: int, tp: np.ndarray,
                iou_sum: np.ndarray) -> tuple[Matching, ...]:
    results = []
    for threshold, hits, total in zip(thresholds, tp.tolist(), iou_sum.tolist()):
        fp, fn = n_pred - hits, n_true - hits

        def ratio(numerator, denominator, hits=hits):
            return numerator / denominator if hits else 0.0

        results.append(Matching(
            "iou", threshold, fp, hits, fn, precision=ratio(hits, hits + fp),
            recall=ratio(hits, hits + fn), accuracy=ratio(hits, hits + fp + fn),
            f1=ratio(2 * hits, 2 * hits + fp + fn), n_true=n_true, n_pred=n_pred,
            mean_true_score=ratio(total, n_true), mean_matched_score=ratio(total, hits),
            panoptic_quality=ratio(total, hits + fp / 2 + fn / 2)))
    return tuple(results)


def _check_truth_prediction(ground_truth, prediction) -> tuple[np.ndarray, np.ndarray]:
    return check_label_images(("ground_truth", "prediction"), ground_truth, prediction,
                              ndims=(2, 3))


def matching(ground_truth, prediction, thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS
             ) -> Matching | tuple[Matching, ...]:
    """Matches true and predicted objects one-to-one by IoU and counts them at each threshold.

    Follows ``stardist.matching.matching`` (Schmidt et al., MICCAI 2018; version 0.9.2) with
    ``criterion="iou"``: labels are renumbered, one overlap table gives the IoU of every pair of
    objects, and :func:`scipy.optimize.linear_sum_assignment` picks the one-to-one assignment
    with the most pairs of IoU >= threshold, and among those the largest sum of IoUs over all the
    pairs it assigns (StarDist's tie-break: below 0.5, where an object can reach the threshold
    with several partners, a pair under the threshold can pull a true positive to a lower IoU).
    From IoU 0.5 up an object reaches the threshold with one partner at most (or two of IoU
    exactly 0.5), so the matches are those of a greedy matching. The numbers equal
    StarDist's up to its float32 rounding of the IoU; every ratio is 0 when there is no true
    positive, also for two empty images. See :class:`Matching` for the fields: ``accuracy`` is
    the "AP" of the Data Science Bowl 2018 (Caicedo et al. 2019), ``panoptic_quality`` that of
    Kirillov et al. 2019.

    Args:
        ground_truth, prediction: 2D (or 3D) integer label images of one shape, 0 background.
        thresholds: one IoU threshold in (0, 1], or a sequence of them.

    Returns:
        a :class:`Matching` for a single threshold, else a tuple of them, one per threshold.

    Example:
        >>> truth = np.array([[1, 1, 1, 1, 0, 2, 2, 0]])
        >>> m = matching(truth, np.array([[5, 5, 5, 0, 0, 0, 0, 7]]), 0.5)  # IoU 3/4; 2 missed
        >>> m.tp, m.fp, m.fn, m.f1, m.accuracy, m.panoptic_quality
        (1, 1, 1, 0.5, 0.3333333333333333, 0.375)
        >>> [m.tp for m in matching(truth, np.array([[5, 5, 5, 0, 0, 0, 0, 7]]), (0.5, 0.75, 0.8))]
        [1, 1, 0]
    """
    ground_truth, prediction = _check_truth_prediction(ground_truth, prediction)
    values, single = check_thresholds(thresholds, "(0, 1]")
    overlap = overlap_table(ground_truth, prediction)
    results = statistics(values, overlap.shape[0] - 1, overlap.shape[1] - 1,
                          *match_pairs(pair_iou(overlap), values))
    return results[0] if single else results


def matching_dataset(ground_truths: Sequence, predictions: Sequence,
                     thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS
                     ) -> Matching | tuple[Matching, ...]:
    """:func:`matching` of a whole dataset: counts summed over the images, then the ratios.

    Each image is matched on its own; ``tp``, ``fp``, ``fn``, ``n_true``, ``n_pred`` and the
    sums of matched IoUs are added up over the images and the ratios computed from the sums, as
    ``stardist.matching.matching_dataset(..., by_image=False)``. So every object weighs the
    same, whichever image it is in (the Data Science Bowl instead averaged per-image scores).

    Example:
        >>> truths = [np.array([[1, 1, 0, 0]]), np.array([[1, 0, 2, 2]])]
        >>> predictions = [np.array([[1, 1, 0, 0]]), np.array([[0, 0, 3, 3]])]
        >>> m = matching_dataset(truths, predictions, 0.5)
        >>> m.tp, m.fn, m.recall, m.n_true
        (2, 1, 0.6666666666666666, 3)
    """
    ground_truths, predictions = list(ground_truths), list(predictions)
    if len(ground_truths) != len(predictions):
        raise InputError(f"ground_truths and predictions must have one image each, got "
                         f"{len(ground_truths)} and {len(predictions)}.")
    if not ground_truths:
        raise InputError("ground_truths is empty; expected at least one label image.")
    values, single = check_thresholds(thresholds, "(0, 1]")
    n_true = n_pred = 0
    tp, iou_sum = np.zeros(len(values), np.int64), np.zeros(len(values))
    for index, (truth, predicted) in enumerate(zip(ground_truths, predictions)):
        try:
            truth, predicted = _check_truth_prediction(truth, predicted)
        except ValueError as error:
            raise InputError(f"image {index}: {error}") from None
        overlap = overlap_table(truth, predicted)
        n_true, n_pred = n_true + overlap.shape[0] - 1, n_pred + overlap.shape[1] - 1
        hits, total = match_pairs(pair_iou(overlap), values)
        tp, iou_sum = tp + hits, iou_sum + total
    results = statistics(values, n_true, n_pred, tp, iou_sum)
    return results[0] if single else results


def seg_from_overlap(overlap: np.ndarray) -> np.ndarray:
    """SEG of each true object: Jaccard with the predicted object covering over half, else 0."""
    covering = overlap[1:, 1:] > 0.5 * overlap.sum(1)[1:, None]  # at most one per true object
    return np.where(covering, pair_iou(overlap), 0.0).max(1, initial=0.0)


def seg_score(ground_truth, prediction) -> float:
    """SEG of the Cell Tracking Challenge: mean Jaccard index of the reference objects.

    A reference object R matches the predicted object S that covers more than half of it,
    ``|R ∩ S| > 0.5 |R|``, and scores ``|R ∩ S| / |R ∪ S|``; unmatched objects score 0. NaN
    when the ground truth has no objects. Definition: Maška et al., "A benchmark for comparison
    of cell tracking algorithms", Bioinformatics 2014, and Ulman et al., "An objective comparison
    of cell-tracking algorithms", Nat. Methods 2017. For a dataset the challenge averages over
    all reference objects, not over images: :func:`seg_dataset`. In 3D the objects are sets of
    voxels and the same rule holds (the challenge's 3D SEG).

    Example:
        >>> truth = np.array([[1, 1, 1, 1, 0, 2, 2]])
        >>> seg_score(truth, np.array([[3, 3, 3, 0, 0, 5, 0]]))  # (3/4 + 0) / 2
        0.375
    """
    ground_truth, prediction = check_pair(ground_truth, prediction)
    scores = seg_from_overlap(overlap_table(ground_truth, prediction))
    return float(scores.mean()) if scores.size else math.nan


def seg_dataset(ground_truths: Sequence, predictions: Sequence) -> float:
    """SEG of a dataset as the Cell Tracking Challenge computes it: the mean over all its objects.

    Every reference object of every image scores as in :func:`seg_score`, and the scores are
    averaged together (Ulman et al. 2017), so an image with many cells weighs more than one
    with few. NaN when no image has a reference object.

    Example:
        >>> truths = [np.array([[1, 1, 0]]), np.array([[1, 0, 2]])]
        >>> seg_dataset(truths, [np.array([[0, 0, 0]]), np.array([[1, 0, 2]])])  # (0 + 1 + 1) / 3
        0.6666666666666666
    """
    ground_truths, predictions = list(ground_truths), list(predictions)
    if len(ground_truths) != len(predictions):
        raise InputError(f"ground_truths and predictions must have one image each, got "
                         f"{len(ground_truths)} and {len(predictions)}.")
    scores = []
    for index, (truth, predicted) in enumerate(zip(ground_truths, predictions)):
        try:
            truth, predicted = check_pair(truth, predicted)
        except ValueError as error:
            raise InputError(f"image {index}: {error}") from None
        scores.append(seg_from_overlap(overlap_table(truth, predicted)))
    scores = np.concatenate(scores) if scores else np.zeros(0)
    return float(scores.mean()) if scores.size else math.nan
