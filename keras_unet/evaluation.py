"""The evaluation measures of the paper and of the field, on instance label images.

Per pair of label images (0 background, 1..N objects):

* :func:`pixel_iou` and :func:`pixel_dice` of every class,
* :func:`rand_error`: the adapted Rand error of the ISBI 2012 EM segmentation challenge, and
  :func:`rand_error_thresholds`, its ranking form: the best of several thresholds of the
  probability map,
* :func:`variation_of_information_error`: the foreground-restricted VI of the same challenge,
* :func:`warping_error`: the topology-aware ISBI 2012 measure (Jain et al. 2010),
* :func:`seg_score`: the SEG measure of the Cell Tracking Challenge (:func:`seg_dataset` pools
  it over the objects of many images),
* :func:`matching`: one-to-one matching of objects by IoU as StarDist does it, giving precision,
  recall, F1, the "AP" of the Data Science Bowl and the panoptic quality
  (:func:`matching_dataset` pools it over many images),

plus :func:`evaluate_model`, which predicts a list of samples and tabulates all of them, per
image and for the dataset, and :func:`evaluate_classes`, the per-class IoU and Dice of semantic
class masks. Unlabelled pixels of the ground truth (-1, partial annotations) are left out of
every measure: the pixel measures skip them, and the object measures see neither the truth nor
the prediction there. Every measure takes the ground truth first and the prediction
second, as StarDist, scikit-image and Keras do (before version 0.2 the pixel, Rand, warping and
SEG measures took the prediction first; pass both by keyword to be independent of the order).
Instance label images are what
:func:`keras_unet.instances.instance_labels` and :func:`keras_unet.data.load_samples` produce.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
import os
import textwrap
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import scipy.ndimage
import scipy.optimize
import skimage.metrics

from keras_unet.class_layout import UNLABELLED, default_class_names
from keras_unet.errors import InputError, OutputExistsError
from keras_unet.instances import instance_labels

# Offsets of the 8 neighbours, bit i of a neighbourhood code is neighbour i.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))

DEFAULT_THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
"""IoU thresholds of :func:`matching`: 0.5 to 0.95 in steps of 0.05, as the Data Science Bowl."""

ISBI_THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""Thresholds of the cell probability in :func:`rand_error_thresholds`: the ISBI 2012 script's."""


def _check_label_values(name: str, array: np.ndarray) -> None:
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise InputError(f"{name} must hold integer labels, got dtype {array.dtype}.")
    if array.size and array.min() < 0:
        raise InputError(f"{name} has negative labels; expected 0 (background) and up.")


def _check_labels(names: tuple[str, str], first, second,
                  ndims: tuple[int, ...] = (2,)) -> tuple[np.ndarray, np.ndarray]:
    first, second = np.asarray(first), np.asarray(second)
    if first.shape != second.shape or first.ndim not in ndims:
        kind = " or ".join(f"{ndim}D" for ndim in ndims)
        raise InputError(f"{names[0]} and {names[1]} must be {kind} label images of one shape, "
                         f"got {first.shape} and {second.shape}.")
    for name, array in zip(names, (first, second)):
        _check_label_values(name, array)
    return first.astype(np.int64), second.astype(np.int64)


def _check_pair(ground_truth, prediction) -> tuple[np.ndarray, np.ndarray]:
    return _check_labels(("ground_truth", "prediction"), ground_truth, prediction)


def _check_thresholds(thresholds, interval: str) -> tuple[tuple[float, ...], bool]:
    """The thresholds as floats, and whether one number (rather than a sequence) was given."""
    try:
        values = None if isinstance(thresholds, str) else np.asarray(thresholds, dtype=float)
    except (TypeError, ValueError):
        values = None
    low = 0.0 if interval == "[0, 1]" else np.nextafter(0.0, 1.0)
    if (values is None or values.ndim > 1 or not values.size or not np.isfinite(values).all()
            or values.min() < low or values.max() > 1):
        raise InputError(f"thresholds must be numbers in {interval}, got {thresholds!r}.")
    return tuple(values.ravel().tolist()), values.ndim == 0


def _class_counts(ground_truth, prediction, num_classes: int):
    ground_truth, prediction = np.asarray(ground_truth), np.asarray(prediction)
    if ground_truth.shape == prediction.shape and (ground_truth == UNLABELLED).any():
        labelled = ground_truth != UNLABELLED  # partial annotations: score labelled pixels
        ground_truth, prediction = ground_truth[labelled][None], prediction[labelled][None]
    ground_truth, prediction = _check_pair(ground_truth, prediction)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise InputError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    if num_classes == 2:  # instance labels: any object is the foreground class
        prediction, ground_truth = prediction > 0, ground_truth > 0
    elif max(prediction.max(), ground_truth.max()) >= num_classes:
        raise InputError(f"labels go up to {max(prediction.max(), ground_truth.max())}, "
                         f"beyond num_classes={num_classes}.")
    joint = np.bincount(prediction.ravel() * num_classes + ground_truth.ravel(),
                        minlength=num_classes**2).reshape(num_classes, num_classes)
    return np.diag(joint).astype(float), joint.sum(1).astype(float), joint.sum(0).astype(float)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def pixel_iou(ground_truth, prediction, num_classes: int = 2) -> np.ndarray:
    """Intersection over union of every class, ``|P ∩ G| / |P ∪ G|`` (NaN for absent classes).

    With ``num_classes=2`` the inputs may be instance labels: every non-zero label is class 1.
    Unlabelled ground-truth pixels (-1) are left out.

    Example:
        >>> pixel_iou(np.array([[0, 0, 2, 2]]), np.array([[0, 1, 1, 1]])).tolist()
        [0.5, 0.6666666666666666]
    """
    intersection, predicted, true = _class_counts(ground_truth, prediction, num_classes)
    return _ratio(intersection, predicted + true - intersection)


def pixel_dice(ground_truth, prediction, num_classes: int = 2) -> np.ndarray:
    """Dice coefficient of every class, ``2 |P ∩ G| / (|P| + |G|)`` (NaN for absent classes).

    Example:
        >>> pixel_dice(np.array([[0, 0, 2, 2]]), np.array([[0, 1, 1, 1]])).tolist()
        [0.6666666666666666, 0.8]
    """
    intersection, predicted, true = _class_counts(ground_truth, prediction, num_classes)
    return _ratio(2 * intersection, predicted + true)


def _split_unassigned(prediction: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """The prediction with each pixel it leaves as background inside a true object a new label."""
    unassigned = (prediction == 0) & (ground_truth > 0)
    prediction = prediction.copy()
    prediction[unassigned] = prediction.max() + 1 + np.arange(np.count_nonzero(unassigned))
    return prediction


def rand_error(ground_truth, prediction) -> float:
    """Adapted Rand error of the ISBI 2012 challenge: 1 - F-score of the foreground-restricted Rand.

    Pairs of pixels are counted only inside the ground truth's objects (its background, 0, is
    ignored), and pixels the prediction leaves as background (0) inside a true object are one-pixel
    segments of their own, as in the challenge's evaluation script: a gap in a predicted cell is
    a split of that cell, not one big segment merged with every other gap. Computed by
    :func:`skimage.metrics.adapted_rand_error` (pair counting, as SNEMI3D) on the prediction with
    those pixels relabelled. 0 for identical segmentations, 1 when no true pair is joined, NaN
    when the ground truth has no objects. Definition: Arganda-Carreras et al., "Crowdsourcing
    the creation of image segmentation algorithms for connectomics", Front. Neuroanat. 2015.
    :func:`rand_error_thresholds` is the form the challenge ranked by.

    Example:
        >>> truth = np.array([[1, 1, 2, 2]])
        >>> rand_error(truth, truth), round(rand_error(truth, np.array([[1, 1, 1, 1]])), 3)
        (0.0, 0.5)
        >>> round(rand_error(truth, np.array([[1, 1, 0, 0]])), 3)  # cell 2 missed: 2 singletons
        0.333
    """
    ground_truth, prediction = _check_pair(ground_truth, prediction)
    prediction = _split_unassigned(prediction, ground_truth)
    with np.errstate(invalid="ignore", divide="ignore"):  # precision/recall of one-pixel objects
        error, _, _ = skimage.metrics.adapted_rand_error(ground_truth, prediction)
    return float(error)


def _check_cell_probability(cell_probability, shape: tuple[int, ...]) -> np.ndarray:
    cell_probability = np.asarray(cell_probability)
    if cell_probability.shape != shape:
        raise InputError(f"ground_truth and cell_probability must be 2D images of one shape, got "
                         f"{shape} and {cell_probability.shape}.")
    if not (np.issubdtype(cell_probability.dtype, np.floating)
            or np.issubdtype(cell_probability.dtype, np.integer)):
        raise InputError(f"cell_probability must hold numbers, got dtype {cell_probability.dtype}.")
    cell_probability = cell_probability.astype(np.float64)
    finite = np.isfinite(cell_probability).all()
    if cell_probability.size and not (finite and 0 <= cell_probability.min()
                                      and cell_probability.max() <= 1):
        raise InputError(f"cell_probability must hold probabilities in [0, 1], got values from "
                         f"{cell_probability.min()} to {cell_probability.max()}.")
    return cell_probability


def _rand_curve(ground_truth: np.ndarray, cell_probability: np.ndarray,
                thresholds: Sequence[float]) -> np.ndarray:
    """:func:`rand_error` of the 4-connected components of ``cell_probability > t``, every t."""
    return np.array([rand_error(ground_truth, scipy.ndimage.label(cell_probability > threshold)[0])
                     for threshold in thresholds])


def _best(errors: np.ndarray, thresholds: Sequence[float]) -> tuple[float, float]:
    """The smallest error and its threshold (the lowest threshold of a tie); NaN if all are."""
    if np.isnan(errors).all():
        return math.nan, math.nan
    best = int(np.nanargmin(errors))
    return float(errors[best]), float(thresholds[best])


def rand_error_thresholds(ground_truth, cell_probability,
                          thresholds: Sequence[float] = ISBI_THRESHOLDS) -> tuple[float, float]:
    """The ISBI 2012 ranking form of the Rand error: the best :func:`rand_error` over thresholds.

    For every threshold t, the cells are the 4-connected components of ``cell_probability > t``
    and are scored by :func:`rand_error` (foreground-restricted); the result is the minimum
    error, i.e. 1 - the maximal foreground-restricted Rand F-score, and the threshold giving it
    (the lowest one on a tie). The thresholds default to the challenge script's 0, 0.1, ..., 1
    (Arganda-Carreras et al., Front. Neuroanat. 2015; Fiji's ``RandError``), which also binarized
    with ``>`` and used 4-connectivity. The script binarized the ground truth too; here it is
    taken as the instance labels it is. NaN for both when the ground truth has no objects.

    Args:
        ground_truth: 2D instance labels.
        cell_probability: 2D probability of the cell class, e.g. ``probabilities[..., 1]``.
        thresholds: thresholds in [0, 1].

    Returns:
        ``(error, threshold)``.

    Example:
        >>> truth = np.array([[1, 1, 0, 2, 2]])
        >>> rand_error_thresholds(truth, np.array([[0.9, 0.8, 0.6, 0.8, 0.9]]))  # joined up to 0.5
        (0.0, 0.6)
    """
    ground_truth = np.asarray(ground_truth)
    if ground_truth.ndim != 2:
        raise InputError(f"ground_truth must be a 2D label image, got shape {ground_truth.shape}.")
    _check_label_values("ground_truth", ground_truth)
    cell_probability = _check_cell_probability(cell_probability, ground_truth.shape)
    thresholds, _ = _check_thresholds(thresholds, "[0, 1]")
    return _best(_rand_curve(ground_truth, cell_probability, thresholds), thresholds)


def variation_of_information_error(ground_truth, prediction) -> float:
    """Foreground-restricted variation of information, ``H(pred | true) + H(true | pred)``, in bits.

    The variation of information of Meilă ("Comparing clusterings by the variation of
    information", COLT 2003): the information lost plus the information gained going from one
    segmentation to the other; the first term grows with splits, the second with merges.
    Restricted to the ground truth's objects as the ISBI 2012 challenge's V^Info
    (Arganda-Carreras et al. 2015): pixels of the true background are ignored and pixels the
    prediction leaves as background inside a true object are one-pixel segments, as in
    :func:`rand_error`. Computed by :func:`skimage.metrics.variation_of_information` (base-2
    logarithms; the challenge's Fiji script used natural ones: multiply by ln 2 to compare).
    0 for identical segmentations, NaN when the ground truth has no objects.

    Example:
        >>> truth = np.array([[1, 1, 2, 2]])
        >>> variation_of_information_error(truth, truth)
        0.0
        >>> variation_of_information_error(truth, np.array([[1, 1, 1, 1]]))  # merged: 1 bit
        1.0
    """
    ground_truth, prediction = _check_labels(("ground_truth", "prediction"), ground_truth,
                                             prediction)
    if not (ground_truth > 0).any():
        return math.nan
    prediction = _split_unassigned(prediction, ground_truth)
    entropies = skimage.metrics.variation_of_information(ground_truth, prediction,
                                                         ignore_labels=(0,))
    return max(0.0, float(np.sum(entropies)))


@functools.cache
def _simple_point_table(foreground_connectivity: int) -> np.ndarray:
    """Whether a pixel with each of the 256 8-neighbourhoods is simple (flipping it keeps topology).

    A pixel is simple when its neighbourhood (without it) has exactly one foreground component
    and one background component adjacent to it, with the foreground counted in
    ``foreground_connectivity`` (4 or 8) and the background in the other (Rosenfeld's
    topological numbers); for 4-connectivity only components 4-adjacent to the pixel count.
    """
    table = np.zeros(256, bool)
    full = scipy.ndimage.generate_binary_structure(2, 2)
    cross = scipy.ndimage.generate_binary_structure(2, 1)
    edge_neighbours = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], bool)
    for code in range(256):
        window = np.zeros((3, 3), bool)
        for bit, (dy, dx) in enumerate(_NEIGHBOURS):
            window[1 + dy, 1 + dx] = bool(code >> bit & 1)
        background = ~window
        background[1, 1] = False
        counts = []
        for mask, connectivity in ((window, foreground_connectivity),
                                   (background, 12 - foreground_connectivity)):
            labels, count = scipy.ndimage.label(mask, full if connectivity == 8 else cross)
            if connectivity == 4:
                count = len(set(labels[edge_neighbours].tolist()) - {0})
            counts.append(count)
        table[code] = counts == [1, 1]
    return table


def _neighbourhood_codes(image: np.ndarray) -> np.ndarray:
    padded = np.pad(image, 1)
    height, width = image.shape
    codes = np.zeros(image.shape, np.uint8)
    for bit, (dy, dx) in enumerate(_NEIGHBOURS):
        codes |= padded[1 + dy:1 + dy + height, 1 + dx:1 + dx + width].astype(np.uint8) << bit
    return codes


def _foreground(labels: np.ndarray) -> np.ndarray:
    """Objects as foreground, with a 1-px background cut where two different objects touch."""
    foreground = labels > 0
    for axis in (0, 1):
        after = np.roll(labels, -1, axis=axis)
        touching = foreground & (after > 0) & (after != labels)
        if axis == 0:
            touching[-1] = False
        else:
            touching[:, -1] = False
        foreground &= ~touching
    return foreground


def warp(source, target, *, connectivity: int = 4) -> np.ndarray:
    """Warps binary ``source`` towards ``target`` by flipping simple points only.

    Flips disagreeing pixels whose flip keeps the topology of ``source`` (number of objects,
    holes and their nesting) until no such pixel remains. Pixels of the four 2x2-subgrids are
    flipped in turn: pixels of one subgrid are 2 px apart, outside each other's 3x3
    neighbourhood, so flipping them together is the same as flipping them one after another.

    Args:
        source, target: binary images of one shape.
        connectivity: 4 or 8, the connectivity of the foreground (the background takes the other).

    Example:
        >>> source = np.zeros((5, 7), bool); source[1:4, 1:3] = True
        >>> target = np.zeros((5, 7), bool); target[1:4, 1:5] = True
        >>> bool((warp(source, target) == target).all())  # a shifted boundary warps away
        True
    """
    if connectivity not in (4, 8):
        raise InputError(f"connectivity must be 4 or 8, got {connectivity!r}.")
    table = _simple_point_table(connectivity)
    warped, target = np.array(source, bool), np.asarray(target, bool)
    grids = []
    for oy, ox in ((0, 0), (0, 1), (1, 0), (1, 1)):
        grid = np.zeros(warped.shape, bool)
        grid[oy::2, ox::2] = True
        grids.append(grid)
    changed = True
    while changed:
        changed = False
        for grid in grids:
            flip = (warped != target) & grid
            if flip.any():
                flip &= table[_neighbourhood_codes(warped)]
                if flip.any():
                    warped[flip] = ~warped[flip]
                    changed = True
    return warped


def warping_error(ground_truth, prediction, *, connectivity: int = 4) -> float:
    """The ISBI 2012 warping error (Jain et al., CVPR 2010): topological disagreement per pixel.

    The ground truth's foreground (non-zero labels, touching objects cut apart) is warped towards
    the prediction by flips of simple points (:func:`warp`), which can move boundaries but never
    split, merge, create or delete objects or holes; the pixels that still disagree are the
    topological errors (splits, merges, missing or extra objects and holes), divided by the
    number of pixels. This is the challenge's direction (warp the reference towards the
    proposal). Shifted boundaries cost nothing; 0 for identical segmentations.

    Example:
        >>> truth = np.zeros((6, 9), int); truth[1:5, 1:8] = 1
        >>> split = truth.copy(); split[:, 4] = 0  # one cell cut in two
        >>> warping_error(truth, truth), round(warping_error(truth, split), 4)
        (0.0, 0.0185)
    """
    ground_truth, prediction = _check_pair(ground_truth, prediction)
    target = _foreground(prediction)
    warped = warp(_foreground(ground_truth), target, connectivity=connectivity)
    return float(np.count_nonzero(warped != target) / target.size)


def _sequential(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """The labels renumbered 1..N in order (0 stays background), flattened, and N."""
    values, inverse = np.unique(labels, return_inverse=True)
    if not values.size:
        return inverse.ravel(), 0
    background = bool(values[0] == 0)
    return inverse.ravel() + (not background), len(values) - background


def _overlap(ground_truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Contingency table: ``[i, j]`` = pixels of true object i in predicted object j (0: none).

    Objects are numbered as :func:`_sequential` renumbers them; the table has one row per true
    object and one column per predicted object, plus row and column 0 for the backgrounds.
    """
    truth, n_true = _sequential(ground_truth)
    predicted, n_pred = _sequential(prediction)
    table = np.bincount(truth * (n_pred + 1) + predicted, minlength=(n_true + 1) * (n_pred + 1))
    return table.reshape(n_true + 1, n_pred + 1)


def _iou(overlap: np.ndarray) -> np.ndarray:
    """IoU of every (true, predicted) pair of objects, from the overlap table."""
    intersection = overlap[1:, 1:].astype(np.float64)
    union = overlap.sum(1)[1:, None] + overlap.sum(0)[None, 1:] - intersection
    return intersection / union  # a union holds at least one object: never 0


def _match(iou: np.ndarray, thresholds: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
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


def _statistics(thresholds: Sequence[float], n_true: int, n_pred: int, tp: np.ndarray,
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
    return _check_labels(("ground_truth", "prediction"), ground_truth, prediction, ndims=(2, 3))


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
    values, single = _check_thresholds(thresholds, "(0, 1]")
    overlap = _overlap(ground_truth, prediction)
    results = _statistics(values, overlap.shape[0] - 1, overlap.shape[1] - 1,
                          *_match(_iou(overlap), values))
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
    values, single = _check_thresholds(thresholds, "(0, 1]")
    n_true = n_pred = 0
    tp, iou_sum = np.zeros(len(values), np.int64), np.zeros(len(values))
    for index, (truth, predicted) in enumerate(zip(ground_truths, predictions)):
        try:
            truth, predicted = _check_truth_prediction(truth, predicted)
        except ValueError as error:
            raise InputError(f"image {index}: {error}") from None
        overlap = _overlap(truth, predicted)
        n_true, n_pred = n_true + overlap.shape[0] - 1, n_pred + overlap.shape[1] - 1
        hits, total = _match(_iou(overlap), values)
        tp, iou_sum = tp + hits, iou_sum + total
    results = _statistics(values, n_true, n_pred, tp, iou_sum)
    return results[0] if single else results


MIN_SIZE_CANDIDATES = (0, 10, 30, 100)
"""The ``min_size`` values :func:`best_min_size` tries: none, the default, and two larger cut-offs
(100 px suits nuclei of a few hundred pixels, benchmarks/README.md "Instances on real data")."""


def best_min_size(ground_truths: Sequence, probabilities: Sequence, *,
                  candidates: Sequence[int] = MIN_SIZE_CANDIDATES, method: str = "auto",
                  unlabelled: Sequence | None = None) -> tuple[int, dict[int, float]]:
    """The ``min_size`` of :func:`keras_unet.instances.instance_labels` with the best object F1.

    No fixed cut-off suits both cells of 14 px and nuclei of 600, so ``unet train`` picks it
    on its validation images, as StarDist picks its probability threshold there: object F1 at
    IoU 0.5 (:func:`matching_dataset`) of the cells of every candidate; the smallest wins a tie.

    Args:
        ground_truths: instance labels, one per image.
        probabilities: ``(H, W, K)`` class probabilities of the same images.
        candidates: the ``min_size`` values to try.
        method: the ``instance_labels`` method.
        unlabelled: optional boolean masks of pixels left out of truth and cells (partial
            annotations).

    Returns:
        ``(min_size, {candidate: F1})``.

    Example:
        >>> truth = np.zeros((20, 20), "int32"); truth[2:12, 2:12] = 1
        >>> found = truth.copy(); found[15:17, 15:17] = 1  # plus a 4 px speck
        >>> best_min_size([truth], [np.eye(2)[found]], candidates=(0, 10))
        (10, {0: 0.6666666666666666, 10: 1.0})
    """
    ground_truths, probabilities = list(ground_truths), list(probabilities)
    masks = (list(unlabelled) if unlabelled is not None
             else [np.zeros(np.shape(t), bool) for t in ground_truths])
    truths = [np.where(mask, 0, truth) for mask, truth in zip(masks, ground_truths)]
    f1 = {int(size): float(matching_dataset(
        truths, [np.where(mask, 0, instance_labels(p, method=method, min_size=int(size)))
                 for mask, p in zip(masks, probabilities)], 0.5).f1)
        for size in candidates}
    best = max(f1.values())
    return min(size for size, value in f1.items() if value == best), f1


def _seg_from_overlap(overlap: np.ndarray) -> np.ndarray:
    """SEG of each true object: Jaccard with the predicted object covering over half, else 0."""
    covering = overlap[1:, 1:] > 0.5 * overlap.sum(1)[1:, None]  # at most one per true object
    return np.where(covering, _iou(overlap), 0.0).max(1, initial=0.0)


def seg_score(ground_truth, prediction) -> float:
    """SEG of the Cell Tracking Challenge: mean Jaccard index of the reference objects.

    A reference object R matches the predicted object S that covers more than half of it,
    ``|R ∩ S| > 0.5 |R|``, and scores ``|R ∩ S| / |R ∪ S|``; unmatched objects score 0. NaN
    when the ground truth has no objects. Definition: Maška et al., "A benchmark for comparison
    of cell tracking algorithms", Bioinformatics 2014, and Ulman et al., "An objective comparison
    of cell-tracking algorithms", Nat. Methods 2017. For a dataset the challenge averages over
    all reference objects, not over images: :func:`seg_dataset`.

    Example:
        >>> truth = np.array([[1, 1, 1, 1, 0, 2, 2]])
        >>> seg_score(truth, np.array([[3, 3, 3, 0, 0, 5, 0]]))  # (3/4 + 0) / 2
        0.375
    """
    ground_truth, prediction = _check_pair(ground_truth, prediction)
    scores = _seg_from_overlap(_overlap(ground_truth, prediction))
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
            truth, predicted = _check_labels(("ground_truth", "prediction"), truth, predicted)
        except ValueError as error:
            raise InputError(f"image {index}: {error}") from None
        scores.append(_seg_from_overlap(_overlap(truth, predicted)))
    scores = np.concatenate(scores) if scores else np.zeros(0)
    return float(scores.mean()) if scores.size else math.nan


METRICS = ("n_true", "n_pred", "f1_50", "f1_75", "ap_50", "ap_75", "ap_50_95", "pq_50", "seg",
           "rand_error", "vi_error", "warping_error", "iou_foreground", "iou_background",
           "dice_foreground", "dice_background")
"""Columns of an :class:`EvaluationReport`, per image and for the dataset.

``n_true``, ``n_pred``: objects in the ground truth and the prediction; ``f1_50``, ``f1_75``,
``ap_50``, ``ap_75``: F1 and AP (:class:`Matching`'s ``accuracy``) at IoU 0.5 and 0.75;
``ap_50_95``: AP averaged over IoU 0.5, 0.55, ..., 0.95; ``pq_50``: panoptic quality at IoU 0.5
(:func:`matching`); ``seg``: :func:`seg_score`; ``rand_error``: :func:`rand_error`;
``vi_error``: :func:`variation_of_information_error`; ``warping_error``: :func:`warping_error`;
``iou_*``, ``dice_*``: :func:`pixel_iou` and :func:`pixel_dice` of the two classes.
"""

PROBABILITY_METRICS = ("rand_error_isbi", "rand_threshold")
"""Columns added when probabilities are known: :func:`rand_error_thresholds` and its threshold."""

POOLING = ("mean row: every column averaged over the images, NaN left out (for ap_50_95 the "
           "Data Science Bowl's score). dataset row: n_true, n_pred, f1, ap and pq from the "
           "object counts summed over the images (matching_dataset); seg over all reference "
           "objects (seg_dataset); rand_error_isbi at the one threshold best for the mean over "
           "the images; the other columns as in the mean row.")
"""How the two summary rows of an :class:`EvaluationReport` pool the images."""

_AT_50, _AT_75 = DEFAULT_THRESHOLDS.index(0.5), DEFAULT_THRESHOLDS.index(0.75)


def _matching_columns(results: tuple[Matching, ...]) -> dict:
    return {
        "n_true": results[0].n_true, "n_pred": results[0].n_pred,
        "f1_50": results[_AT_50].f1, "f1_75": results[_AT_75].f1,
        "ap_50": results[_AT_50].accuracy, "ap_75": results[_AT_75].accuracy,
        "ap_50_95": float(np.mean([result.accuracy for result in results])),
        "pq_50": results[_AT_50].panoptic_quality,
    }


class _ImageScores(NamedTuple):
    """One image's row and what the dataset row pools: matches, SEG per object, Rand curve."""

    row: dict
    tp: np.ndarray
    iou_sum: np.ndarray
    seg: np.ndarray
    rand_curve: np.ndarray | None


def _score(ground_truth, prediction, cell_probability=None) -> _ImageScores:
    ground_truth, prediction = _check_pair(ground_truth, prediction)
    overlap = _overlap(ground_truth, prediction)
    tp, iou_sum = _match(_iou(overlap), DEFAULT_THRESHOLDS)
    seg = _seg_from_overlap(overlap)
    iou = pixel_iou(ground_truth, prediction)
    dice = pixel_dice(ground_truth, prediction)
    row = {
        **_matching_columns(_statistics(DEFAULT_THRESHOLDS, overlap.shape[0] - 1,
                                        overlap.shape[1] - 1, tp, iou_sum)),
        "seg": float(seg.mean()) if seg.size else math.nan,
        "rand_error": rand_error(ground_truth, prediction),
        "vi_error": variation_of_information_error(ground_truth, prediction),
        "warping_error": warping_error(ground_truth, prediction),
        "iou_foreground": float(iou[1]), "iou_background": float(iou[0]),
        "dice_foreground": float(dice[1]), "dice_background": float(dice[0]),
    }
    curve = None
    if cell_probability is not None:
        cell_probability = _check_cell_probability(cell_probability, ground_truth.shape)
        curve = _rand_curve(ground_truth, cell_probability, ISBI_THRESHOLDS)
        row["rand_error_isbi"], row["rand_threshold"] = _best(curve, ISBI_THRESHOLDS)
    return _ImageScores(row, tp, iou_sum, seg, curve)


def evaluate_labels(ground_truth, prediction, *, cell_probability=None) -> dict[str, float]:
    """All measures for one pair of instance label images, keyed as in :data:`METRICS`.

    Args:
        prediction, ground_truth: 2D instance label images of one shape.
        cell_probability: the predicted probability of the cell class, if known; adds the
            :data:`PROBABILITY_METRICS` (:func:`rand_error_thresholds`).

    Example:
        >>> truth = np.array([[0, 1, 1, 0, 2, 2]])
        >>> row = evaluate_labels(truth, truth)
        >>> row["iou_foreground"], row["rand_error"], row["warping_error"], row["seg"]
        (1.0, 0.0, 0.0, 1.0)
        >>> row["n_true"], row["f1_50"], row["ap_50_95"], row["pq_50"], row["vi_error"]
        (2, 1.0, 1.0, 1.0, 0.0)
    """
    return _score(ground_truth, prediction, cell_probability).row


def _mean(values) -> float:
    values = [value for value in values if not math.isnan(value)]
    return float(np.mean(values)) if values else math.nan


def _pooled_row(rows: list[dict], scores: Sequence[_ImageScores]) -> dict:
    """The dataset row: see :data:`POOLING`."""
    dataset = {name: _mean(row[name] for row in rows) for name in rows[0] if name != "image"}
    dataset.update(_matching_columns(_statistics(
        DEFAULT_THRESHOLDS, sum(row["n_true"] for row in rows), sum(row["n_pred"] for row in rows),
        sum(score.tp for score in scores), sum(score.iou_sum for score in scores))))
    seg = np.concatenate([score.seg for score in scores])
    dataset["seg"] = float(seg.mean()) if seg.size else math.nan
    curves = [score.rand_curve for score in scores if score.rand_curve is not None]
    if curves:
        curves = np.stack(curves)
        counted = (~np.isnan(curves)).sum(0)
        mean_curve = np.where(counted > 0, np.nansum(curves, 0) / np.maximum(counted, 1), np.nan)
        dataset["rand_error_isbi"], dataset["rand_threshold"] = _best(mean_curve, ISBI_THRESHOLDS)
    return dataset


def _format(value) -> str:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    return f"{value:.4f}"


def _json_value(value):
    """NaN as JSON null; NumPy scalars as Python numbers."""
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclasses.dataclass
class EvaluationReport:
    """Measures per image and for the whole dataset; prints as a table, saves as CSV and JSON.

    Attributes:
        rows: one dict per image: ``"image"`` (its path) and the :data:`METRICS` (and the
            :data:`PROBABILITY_METRICS` when probabilities were scored).
        dataset: the measures of the dataset, pooled over its images as :data:`POOLING` says
            (:func:`evaluate_samples` fills it in); when not given, the mean over the images.
            :attr:`mean` is the plain mean over the images.
        pooling: how the dataset row pools the images, printed below the table.

    Example:
        >>> rows = [{"image": name, **dict.fromkeys(METRICS, value)}
        ...         for name, value in (("a.png", 0.5), ("b.png", math.nan))]
        >>> EvaluationReport(rows).mean["seg"]  # NaN (no reference objects) is left out
        0.5
    """

    rows: list[dict]
    dataset: dict | None = None
    pooling: str = POOLING

    def __post_init__(self) -> None:
        if self.dataset is None:
            self.dataset = self.mean

    @property
    def columns(self) -> list[str]:
        """The measures, in the rows' order (every key but ``"image"``)."""
        return [name for name in self.rows[0] if name != "image"] if self.rows else []

    @property
    def mean(self) -> dict[str, float]:
        """Mean of every measure over the images (ignoring NaN, e.g. SEG of empty images)."""
        return {name: _mean(row[name] for row in self.rows) for name in self.columns}

    def table(self) -> str:
        """The rows, their mean and the dataset row as an aligned text table, with a legend.

        Example:
            >>> report = EvaluationReport([{"image": "a.png", "seg": 0.5, "n_true": 3},
            ...                            {"image": "b.png", "seg": 1.0, "n_true": 1}],
            ...                           dataset={"seg": 0.625, "n_true": 4})
            >>> print(report.table())
                       seg n_true
            a.png   0.5000      3
            b.png   1.0000      1
            mean    0.7500 2.0000
            dataset 0.6250      4
            mean row: ...
        """
        names = [str(row["image"]) for row in self.rows] + ["mean", "dataset"]
        width = max(len(name) for name in names)
        widths = [max(6, len(name)) for name in self.columns]
        lines = [" ".join([" " * width] + [n.rjust(w) for n, w in zip(self.columns, widths)])]
        for name, row in zip(names, self.rows + [self.mean, self.dataset]):
            cells = [_format(row[n]).rjust(w) for n, w in zip(self.columns, widths)]
            lines.append(" ".join([name.ljust(width)] + cells))
        return "\n".join(lines + textwrap.wrap(self.pooling, 100))

    def save(self, folder: str | os.PathLike, *, overwrite: bool = False) -> tuple[str, str]:
        """Writes ``evaluation.csv`` (rows, mean, dataset) and ``evaluation.json`` into ``folder``.

        The JSON holds ``"images"`` (the rows), ``"dataset"``, ``"mean"`` (over the images) and
        ``"pooling"`` (:data:`POOLING`); NaN is written as null.

        Raises:
            FileExistsError: if either file exists and ``overwrite`` is false.

        Example:
            >>> import tempfile
            >>> report = EvaluationReport([{"image": "a.png", **dict.fromkeys(METRICS, 1.0)}])
            >>> [os.path.basename(p) for p in report.save(tempfile.mkdtemp())]
            ['evaluation.csv', 'evaluation.json']
        """
        os.makedirs(folder, exist_ok=True)
        paths = (os.path.join(folder, "evaluation.csv"), os.path.join(folder, "evaluation.json"))
        existing = [path for path in paths if os.path.exists(path)]
        if existing and not overwrite:
            raise OutputExistsError(f"{existing[0]!r} exists; pass overwrite=True to replace it.")
        with open(paths[0], "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=["image", *self.columns])
            writer.writeheader()
            writer.writerows(self.rows + [{"image": "mean", **self.mean},
                                          {"image": "dataset", **self.dataset}])
        document = {"images": self.rows, "dataset": self.dataset, "mean": self.mean,
                    "pooling": self.pooling}
        document = {key: [{k: _json_value(v) for k, v in row.items()} for row in value]
                    if isinstance(value, list) else
                    {k: _json_value(v) for k, v in value.items()} if isinstance(value, dict)
                    else value for key, value in document.items()}
        with open(paths[1], "w") as file:
            json.dump(document, file, indent=2)
        return paths


def _evaluate(samples: Sequence, predict: Callable) -> EvaluationReport:
    """Scores ``predict(image) -> (labels, cell probability or None)`` on every sample."""
    if not samples:
        raise InputError("no samples to evaluate.")
    rows, scores = [], []
    for sample in samples:
        labels, cell_probability = predict(sample.image)
        labels, truth = np.asarray(labels), np.asarray(sample.labels)
        if labels.shape != truth.shape:
            raise InputError(f"prediction of {sample.path!r} has shape {labels.shape}, but its "
                             f"labels have shape {truth.shape}.")
        if cell_probability is not None and cell_probability.shape != truth.shape:
            raise InputError(f"probabilities of {sample.path!r} are {cell_probability.shape} "
                             f"pixels, but its labels have shape {truth.shape}.")
        unlabelled = truth == UNLABELLED
        if unlabelled.any():  # partial annotations: objects only where the truth is known
            truth, labels = np.where(unlabelled, 0, truth), np.where(unlabelled, 0, labels)
            if cell_probability is not None:
                cell_probability = np.where(unlabelled, 0.0, cell_probability)
        scores.append(_score(truth, labels, cell_probability))
        rows.append({"image": str(sample.path), **scores[-1].row})
    return EvaluationReport(rows, _pooled_row(rows, scores))


def evaluate_samples(predict_labels: Callable[[np.ndarray], np.ndarray],
                     samples: Sequence) -> EvaluationReport:
    """Predicts every sample with ``predict_labels(image) -> instance labels`` and scores it.

    Every image gets the :data:`METRICS`; the report's dataset row pools them as
    :data:`POOLING` says.

    Args:
        predict_labels: maps an image to an int label image of the same height and width.
        samples: :class:`keras_unet.data.Sample` objects (``.image``, ``.labels``, ``.path``).

    Example:
        >>> from types import SimpleNamespace
        >>> truth = np.array([[0, 1, 1, 0, 2, 2]])
        >>> sample = SimpleNamespace(image=truth, labels=truth, path="a.png")
        >>> report = evaluate_samples(lambda image: image, [sample])
        >>> report.dataset["seg"], report.dataset["ap_50"]
        (1.0, 1.0)
    """
    return _evaluate(samples, lambda image: (predict_labels(image), None))


def _cell_probability(probabilities: np.ndarray) -> np.ndarray:
    """The probability of the cell class: channel 1 of softmax outputs, or the one sigmoid."""
    if probabilities.ndim != 3 or probabilities.shape[-1] < 1:
        raise InputError(f"probabilities must be (height, width, classes), got shape "
                         f"{probabilities.shape}.")
    return probabilities[..., 0] if probabilities.shape[-1] == 1 else probabilities[..., 1]


def evaluate_probabilities(predict_probabilities: Callable[[np.ndarray], np.ndarray],
                           samples: Sequence, *,
                           to_labels: Callable[[np.ndarray], np.ndarray] = instance_labels
                           ) -> EvaluationReport:
    """Scores class probabilities: the cells that ``to_labels`` makes of them, and the map itself.

    Every image gets the :data:`METRICS` of ``to_labels(probabilities)`` and the
    :data:`PROBABILITY_METRICS`: the ISBI 2012 ranking form of the Rand error
    (:func:`rand_error_thresholds`) on the probability of the cell class (class 1, or the one
    sigmoid channel; the interiors of the 3-class layout, which its border ring keeps apart as
    the membranes do in the ISBI data). The dataset row pools them as :data:`POOLING` says.

    Args:
        predict_probabilities: maps an image to (H, W, classes) probabilities.
        samples: :class:`keras_unet.data.Sample` objects (``.image``, ``.labels``, ``.path``).
        to_labels: the one step from probabilities to instance labels (default:
            :func:`keras_unet.instances.instance_labels` with its defaults).

    Example:
        >>> from types import SimpleNamespace
        >>> truth = np.zeros((8, 12), "int32"); truth[1:6, 1:5] = 1; truth[1:6, 7:11] = 2
        >>> sample = SimpleNamespace(image=truth, labels=truth, path="a.png")
        >>> one_hot = lambda image: np.eye(2)[(image > 0).astype(int)]
        >>> row = evaluate_probabilities(one_hot, [sample]).rows[0]
        >>> row["seg"], row["rand_error_isbi"], row["rand_threshold"]
        (1.0, 0.0, 0.0)
    """
    def predict(image):
        probabilities = np.asarray(predict_probabilities(image))
        return np.asarray(to_labels(probabilities)), _cell_probability(probabilities)

    return _evaluate(samples, predict)


def evaluate_model(model, samples: Sequence, *, tile_size=None, batch_size: int = 4,
                   tta: bool = False) -> EvaluationReport:
    """Scores a Keras U-Net on samples: :func:`keras_unet.predict_tiled`, then
    :func:`evaluate_probabilities` (cells from the probabilities, and the ISBI Rand ranking form).

    Example:
        >>> from types import SimpleNamespace
        >>> from keras_unet import build_unet
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> truth = np.zeros((40, 50), "int32"); truth[5:20, 5:20] = 1
        >>> report = evaluate_model(model, [SimpleNamespace(image=truth * 200, labels=truth,
        ...                                                 path="x.png")])
        >>> report.columns == [*METRICS, *PROBABILITY_METRICS]
        True
    """
    from keras_unet.inference import predict_tiled  # measuring alone never loads the engine

    return evaluate_probabilities(
        lambda image: predict_tiled(model, image, tile_size=tile_size, batch_size=batch_size,
                                    tta=tta), samples)


CLASS_POOLING = ("mean row: every column averaged over the images, NaN (a class absent from "
                 "both truth and prediction) left out. dataset row: IoU and Dice from the pixel "
                 "counts summed over the images. mean_iou, mean_dice: the mean over the classes "
                 "other than background (class 0); unlabelled pixels are left out.")
"""How the summary rows of :func:`evaluate_classes` pool the images."""


def _class_columns(intersection: np.ndarray, predicted: np.ndarray, true: np.ndarray,
                   names: Sequence[str]) -> dict:
    iou = _ratio(intersection, predicted + true - intersection)
    dice = _ratio(2 * intersection, predicted + true)
    row = {f"iou_{name}": float(value) for name, value in zip(names, iou)}
    row.update({f"dice_{name}": float(value) for name, value in zip(names, dice)})
    row["mean_iou"], row["mean_dice"] = _mean(iou[1:].tolist()), _mean(dice[1:].tolist())
    return row


def evaluate_classes(predict_probabilities: Callable[[np.ndarray], np.ndarray],
                     samples: Sequence, class_names: Sequence[str] | None = None
                     ) -> EvaluationReport:
    """Per-class pixel IoU and Dice of semantic class masks, per image and for the dataset.

    The prediction is the argmax class; columns are ``iou_<name>`` and ``dice_<name>`` of
    every class, then ``mean_iou`` and ``mean_dice`` over the classes but background. The
    dataset row pools the pixel counts of all images (:data:`CLASS_POOLING`).

    Args:
        predict_probabilities: maps an image to (H, W, K) probabilities.
        samples: samples whose labels are class indices 0..K-1 (-1 unlabelled).
        class_names: K names (default: :func:`keras_unet.class_layout.default_class_names`).

    Example:
        >>> from types import SimpleNamespace
        >>> truth = np.array([[0, 1, 2, 2, -1]])
        >>> sample = SimpleNamespace(image=np.array([[0, 1, 2, 1, 0]]), labels=truth, path="a")
        >>> report = evaluate_classes(lambda image: np.eye(3)[image], [sample], "bg a b".split())
        >>> report.rows[0]["iou_b"], report.rows[0]["dice_b"], report.dataset["mean_iou"]
        (0.5, 0.6666666666666666, 0.5)
    """
    if not samples:
        raise InputError("no samples to evaluate.")
    rows, totals = [], None
    for sample in samples:
        probabilities = np.asarray(predict_probabilities(sample.image))
        truth = np.asarray(sample.labels)
        if probabilities.shape[:2] != truth.shape or probabilities.ndim != 3:
            raise InputError(f"probabilities of {sample.path!r} have shape "
                             f"{probabilities.shape}, but its labels have shape {truth.shape}.")
        num_classes = probabilities.shape[-1]
        names = tuple(class_names or default_class_names(num_classes, "semantic"))
        if len(names) != num_classes:
            raise InputError(f"class_names gives {len(names)} names but the model has "
                             f"{num_classes} classes.")
        if truth.max(initial=0) >= num_classes:
            raise InputError(f"{sample.path}: holds class id {truth.max()} but the model has "
                             f"{num_classes} classes.")
        counts = np.stack(_class_counts(truth, probabilities.argmax(-1), num_classes))
        totals = counts if totals is None else totals + counts
        rows.append({"image": str(sample.path), **_class_columns(*counts, names)})
    return EvaluationReport(rows, _class_columns(*totals, names), CLASS_POOLING)
