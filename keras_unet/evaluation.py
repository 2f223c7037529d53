"""The paper's evaluation measures, on label images ``(prediction, ground_truth)``.

* pixel IoU and Dice per class,
* ``rand_error``: the adapted Rand error of the ISBI 2012 EM segmentation challenge,
* ``warping_error``: the topology-aware ISBI 2012 measure (Jain et al. 2010),
* ``seg_score``: the SEG measure of the Cell Tracking Challenge (ISBI 2015),

plus :func:`evaluate_model`, which predicts a list of samples and tabulates all of them.
Every metric takes the prediction first and the ground truth second. Instance label images
(0 background, 1..N objects) are what :func:`keras_unet.inference.labels_from_probabilities`
and :func:`keras_unet.data.load_samples` produce.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
import os
from collections.abc import Callable, Sequence

import numpy as np
import scipy.ndimage
import skimage.metrics

from keras_unet.inference import labels_from_probabilities, predict_tiled

# Offsets of the 8 neighbours, bit i of a neighbourhood code is neighbour i.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _check_pair(prediction, ground_truth) -> tuple[np.ndarray, np.ndarray]:
    prediction, ground_truth = np.asarray(prediction), np.asarray(ground_truth)
    if prediction.shape != ground_truth.shape or prediction.ndim != 2:
        raise ValueError(
            f"prediction and ground_truth must be 2D label images of one shape, got "
            f"{prediction.shape} and {ground_truth.shape}."
        )
    for name, array in (("prediction", prediction), ("ground_truth", ground_truth)):
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
            raise ValueError(f"{name} must hold integer labels, got dtype {array.dtype}.")
        if array.size and array.min() < 0:
            raise ValueError(f"{name} has negative labels; expected 0 (background) and up.")
    return prediction.astype(np.int64), ground_truth.astype(np.int64)


def _class_counts(prediction, ground_truth, num_classes: int):
    prediction, ground_truth = _check_pair(prediction, ground_truth)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    if num_classes == 2:  # instance labels: any object is the foreground class
        prediction, ground_truth = prediction > 0, ground_truth > 0
    elif max(prediction.max(), ground_truth.max()) >= num_classes:
        raise ValueError(f"labels go up to {max(prediction.max(), ground_truth.max())}, "
                         f"beyond num_classes={num_classes}.")
    joint = np.bincount(prediction.ravel() * num_classes + ground_truth.ravel(),
                        minlength=num_classes**2).reshape(num_classes, num_classes)
    return np.diag(joint).astype(float), joint.sum(1).astype(float), joint.sum(0).astype(float)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def pixel_iou(prediction, ground_truth, num_classes: int = 2) -> np.ndarray:
    """Intersection over union of every class, ``|P ∩ G| / |P ∪ G|`` (NaN for absent classes).

    With ``num_classes=2`` the inputs may be instance labels: every non-zero label is class 1.

    Example:
        >>> pixel_iou(np.array([[0, 1, 1, 1]]), np.array([[0, 0, 2, 2]])).tolist()
        [0.5, 0.6666666666666666]
    """
    intersection, predicted, true = _class_counts(prediction, ground_truth, num_classes)
    return _ratio(intersection, predicted + true - intersection)


def pixel_dice(prediction, ground_truth, num_classes: int = 2) -> np.ndarray:
    """Dice coefficient of every class, ``2 |P ∩ G| / (|P| + |G|)`` (NaN for absent classes).

    Example:
        >>> pixel_dice(np.array([[0, 1, 1, 1]]), np.array([[0, 0, 2, 2]])).tolist()
        [0.6666666666666666, 0.8]
    """
    intersection, predicted, true = _class_counts(prediction, ground_truth, num_classes)
    return _ratio(2 * intersection, predicted + true)


def rand_error(prediction, ground_truth) -> float:
    """Adapted Rand error of the ISBI 2012 challenge: 1 - F-score of the foreground-restricted Rand.

    Pairs of pixels are counted only inside the ground truth's objects (its background, 0, is
    ignored), and pixels the prediction leaves as background (0) inside a true object are one-pixel
    segments of their own, as in the challenge's evaluation script: a gap in a predicted cell is
    a split of that cell, not one big segment merged with every other gap. Computed by
    :func:`skimage.metrics.adapted_rand_error` (pair counting, as SNEMI3D) on the prediction with
    those pixels relabelled. 0 for identical segmentations, 1 when no true pair is joined.

    Example:
        >>> truth = np.array([[1, 1, 2, 2]])
        >>> rand_error(truth, truth), round(rand_error(np.array([[1, 1, 1, 1]]), truth), 3)
        (0.0, 0.5)
        >>> round(rand_error(np.array([[1, 1, 0, 0]]), truth), 3)  # cell 2 missed: 2 singletons
        0.333
    """
    prediction, ground_truth = _check_pair(prediction, ground_truth)
    unassigned = (prediction == 0) & (ground_truth > 0)
    prediction = prediction.copy()
    prediction[unassigned] = prediction.max() + 1 + np.arange(np.count_nonzero(unassigned))
    with np.errstate(invalid="ignore", divide="ignore"):  # precision/recall of one-pixel objects
        error, _, _ = skimage.metrics.adapted_rand_error(ground_truth, prediction)
    return float(error)


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
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}.")
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


def warping_error(prediction, ground_truth, *, connectivity: int = 4) -> float:
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
        >>> warping_error(truth, truth), round(warping_error(split, truth), 4)
        (0.0, 0.0185)
    """
    prediction, ground_truth = _check_pair(prediction, ground_truth)
    target = _foreground(prediction)
    warped = warp(_foreground(ground_truth), target, connectivity=connectivity)
    return float(np.count_nonzero(warped != target) / target.size)


def seg_score(prediction, ground_truth) -> float:
    """SEG of the Cell Tracking Challenge: mean Jaccard index of the reference objects.

    A reference object R matches the predicted object S that covers more than half of it,
    ``|R ∩ S| > 0.5 |R|``, and scores ``|R ∩ S| / |R ∪ S|``; unmatched objects score 0. NaN
    when the ground truth has no objects.

    Example:
        >>> truth = np.array([[1, 1, 1, 1, 0, 2, 2]])
        >>> seg_score(np.array([[3, 3, 3, 0, 0, 5, 0]]), truth)  # (3/4 + 0) / 2
        0.375
    """
    prediction, ground_truth = _check_pair(prediction, ground_truth)
    objects = np.unique(ground_truth[ground_truth > 0])
    if not len(objects):
        return math.nan
    inside = ground_truth > 0
    pairs, overlap = np.unique(np.stack([ground_truth[inside], prediction[inside]]), axis=1,
                               return_counts=True)
    reference_size = np.bincount(ground_truth.ravel())
    predicted_size = np.bincount(prediction.ravel())
    scores = {}
    for (reference, predicted), count in zip(pairs.T, overlap):
        if predicted > 0 and count > 0.5 * reference_size[reference]:
            union = reference_size[reference] + predicted_size[predicted] - count
            scores[reference] = count / union
    return float(sum(scores.get(obj, 0.0) for obj in objects) / len(objects))


METRICS = ("iou_background", "iou_foreground", "dice_background", "dice_foreground",
           "rand_error", "warping_error", "seg")
"""Columns of an :class:`EvaluationReport`."""


def evaluate_labels(prediction, ground_truth) -> dict[str, float]:
    """All measures for one pair of instance label images, keyed as in :data:`METRICS`.

    Example:
        >>> truth = np.array([[0, 1, 1, 0, 2, 2]])
        >>> row = evaluate_labels(truth, truth)
        >>> row["iou_foreground"], row["rand_error"], row["warping_error"], row["seg"]
        (1.0, 0.0, 0.0, 1.0)
    """
    iou = pixel_iou(prediction, ground_truth)
    dice = pixel_dice(prediction, ground_truth)
    return {
        "iou_background": float(iou[0]), "iou_foreground": float(iou[1]),
        "dice_background": float(dice[0]), "dice_foreground": float(dice[1]),
        "rand_error": rand_error(prediction, ground_truth),
        "warping_error": warping_error(prediction, ground_truth),
        "seg": seg_score(prediction, ground_truth),
    }


@dataclasses.dataclass
class EvaluationReport:
    """Per-image measures and their mean; prints as a table, saves as CSV and JSON.

    Attributes:
        rows: one dict per image: ``"image"`` (its path) and the :data:`METRICS`.

    Example:
        >>> rows = [{"image": name, **dict.fromkeys(METRICS, value)}
        ...         for name, value in (("a.png", 0.5), ("b.png", math.nan))]
        >>> EvaluationReport(rows).mean["seg"]  # NaN (no reference objects) is left out
        0.5
    """

    rows: list[dict]

    @property
    def mean(self) -> dict[str, float]:
        """Mean of every measure over the images (ignoring NaN, e.g. SEG of empty images)."""
        means = {}
        for name in METRICS:
            values = [row[name] for row in self.rows if not math.isnan(row[name])]
            means[name] = float(np.mean(values)) if values else math.nan
        return means

    def table(self) -> str:
        """The rows and the mean as an aligned text table.

        Example:
            >>> report = EvaluationReport([{"image": "a.png", **dict.fromkeys(METRICS, 0.5)}])
            >>> print(report.table().splitlines()[-1])
            mean   0.5000 0.5000 0.5000 0.5000 0.5000 0.5000 0.5000
        """
        names = [str(row["image"]) for row in self.rows] + ["mean"]
        width = max(len(name) for name in names)
        headers = [max(6, len(metric)) for metric in METRICS]
        lines = [" ".join([" " * width] + [m.rjust(w) for m, w in zip(METRICS, headers)])]
        for name, row in zip(names, self.rows + [self.mean]):
            cells = [f"{row[m]:.4f}".rjust(w) for m, w in zip(METRICS, headers)]
            lines.append(" ".join([name.ljust(width)] + cells))
        return "\n".join(lines)

    def save(self, folder: str | os.PathLike, *, overwrite: bool = False) -> tuple[str, str]:
        """Writes ``evaluation.csv`` (rows + mean) and ``evaluation.json`` into ``folder``.

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
            raise FileExistsError(f"{existing[0]!r} exists; pass overwrite=True to replace it.")
        with open(paths[0], "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=["image", *METRICS])
            writer.writeheader()
            writer.writerows(self.rows + [{"image": "mean", **self.mean}])
        with open(paths[1], "w") as file:
            json.dump({"images": self.rows, "mean": self.mean}, file, indent=2)
        return paths


def evaluate_samples(predict_labels: Callable[[np.ndarray], np.ndarray],
                     samples: Sequence) -> EvaluationReport:
    """Predicts every sample with ``predict_labels(image) -> instance labels`` and scores it.

    Args:
        predict_labels: maps an image to an int label image of the same height and width.
        samples: :class:`keras_unet.data.Sample` objects (``.image``, ``.labels``, ``.path``).

    Example:
        >>> from types import SimpleNamespace
        >>> truth = np.array([[0, 1, 1, 0, 2, 2]])
        >>> sample = SimpleNamespace(image=truth, labels=truth, path="a.png")
        >>> evaluate_samples(lambda image: image, [sample]).mean["seg"]
        1.0
    """
    if not samples:
        raise ValueError("no samples to evaluate.")
    rows = []
    for sample in samples:
        labels = np.asarray(predict_labels(sample.image))
        if labels.shape != np.asarray(sample.labels).shape:
            raise ValueError(f"prediction of {sample.path!r} has shape {labels.shape}, but its "
                             f"labels have shape {np.asarray(sample.labels).shape}.")
        rows.append({"image": str(sample.path), **evaluate_labels(labels, sample.labels)})
    return EvaluationReport(rows)


def evaluate_model(model, samples: Sequence, *, tile_size=None, batch_size: int = 4,
                   tta: bool = False) -> EvaluationReport:
    """Scores a Keras U-Net on samples with :func:`keras_unet.predict_tiled` + connected cells.

    Example:
        >>> from types import SimpleNamespace
        >>> from keras_unet import build_unet
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> truth = np.zeros((40, 50), "int32"); truth[5:20, 5:20] = 1
        >>> report = evaluate_model(model, [SimpleNamespace(image=truth * 200, labels=truth,
        ...                                                 path="x.png")])
        >>> sorted(report.mean) == sorted(METRICS)
        True
    """
    def predict_labels(image):
        probabilities = predict_tiled(model, image, tile_size=tile_size, batch_size=batch_size,
                                      tta=tta)
        return labels_from_probabilities(probabilities)

    return evaluate_samples(predict_labels, samples)
