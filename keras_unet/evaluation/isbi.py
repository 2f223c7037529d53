"""The measures of the ISBI 2012 EM segmentation challenge: Rand error (of a label image, and
the ranking form over thresholds), variation of information, and the warping error.

The Rand error and the variation of information count pairs and overlaps of voxels alike
(volumes, as SNEMI3D scored them); the warping error is a 2D measure (its simple points are
those of the 8-neighbourhood) and refuses volumes.

Definitions: Arganda-Carreras et al., "Crowdsourcing the creation of image segmentation
algorithms for connectomics", Front. Neuroanat. 2015; Jain et al., CVPR 2010 (warping).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import scipy.ndimage
import skimage.metrics

from keras_unet.errors import InputError
from keras_unet.evaluation.label_images import (
    check_label_images,
    check_label_values,
    check_pair,
    check_thresholds,
)

# Offsets of the 8 neighbours, bit i of a neighbourhood code is neighbour i.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))

ISBI_THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""Thresholds of the cell probability in :func:`rand_error_thresholds`: the ISBI 2012 script's."""


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
    ground_truth, prediction = check_pair(ground_truth, prediction)
    prediction = _split_unassigned(prediction, ground_truth)
    with np.errstate(invalid="ignore", divide="ignore"):  # precision/recall of one-pixel objects
        error, _, _ = skimage.metrics.adapted_rand_error(ground_truth, prediction)
    return float(error)


def check_cell_probability(cell_probability, shape: tuple[int, ...]) -> np.ndarray:
    cell_probability = np.asarray(cell_probability)
    if cell_probability.shape != shape:
        kind = "3D volumes" if len(shape) == 3 else "2D images"
        raise InputError(f"ground_truth and cell_probability must be {kind} of one shape, got "
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


def rand_curve(ground_truth: np.ndarray, cell_probability: np.ndarray,
                thresholds: Sequence[float]) -> np.ndarray:
    """:func:`rand_error` of the 4-connected components of ``cell_probability > t``, every t."""
    return np.array([rand_error(ground_truth, scipy.ndimage.label(cell_probability > threshold)[0])
                     for threshold in thresholds])


def best_threshold(errors: np.ndarray, thresholds: Sequence[float]) -> tuple[float, float]:
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
    if ground_truth.ndim not in (2, 3):
        raise InputError(f"ground_truth must be a 2D label image or a 3D volume, got shape "
                         f"{ground_truth.shape}.")
    check_label_values("ground_truth", ground_truth)
    cell_probability = check_cell_probability(cell_probability, ground_truth.shape)
    thresholds, _ = check_thresholds(thresholds, "[0, 1]")
    return best_threshold(rand_curve(ground_truth, cell_probability, thresholds), thresholds)


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
    ground_truth, prediction = check_pair(ground_truth, prediction)
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
    ground_truth, prediction = check_label_images(("ground_truth", "prediction"), ground_truth,
                                                  prediction)
    target = _foreground(prediction)
    warped = warp(_foreground(ground_truth), target, connectivity=connectivity)
    return float(np.count_nonzero(warped != target) / target.size)
