"""Evaluation reports: the columns of every image and of the dataset, as a table, CSV and JSON.

:func:`evaluate_labels` scores one pair of label images with every measure; an
:class:`EvaluationReport` holds one row per image, their mean and the dataset row, pooled as
the challenges pool them (:data:`POOLING`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from keras_unet.errors import NotAFolderError
from keras_unet.evaluation.isbi import (
    ISBI_THRESHOLDS,
    best_threshold,
    check_cell_probability,
    rand_curve,
    rand_error,
    variation_of_information_error,
    warping_error,
)
from keras_unet.evaluation.label_images import check_pair
from keras_unet.evaluation.matching import (
    DEFAULT_THRESHOLDS,
    Matching,
    match_pairs,
    overlap_table,
    pair_iou,
    seg_from_overlap,
    statistics,
)
from keras_unet.evaluation.pixel import pixel_dice, pixel_iou, ratio
from keras_unet.io.atomic import refuse_existing, written_atomically

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


class ImageScores(NamedTuple):
    """One image's row and what the dataset row pools: matches, SEG per object, Rand curve."""

    row: dict
    tp: np.ndarray
    iou_sum: np.ndarray
    seg: np.ndarray
    rand_curve: np.ndarray | None


def image_scores(ground_truth, prediction, cell_probability=None) -> ImageScores:
    ground_truth, prediction = check_pair(ground_truth, prediction)
    overlap = overlap_table(ground_truth, prediction)
    tp, iou_sum = match_pairs(pair_iou(overlap), DEFAULT_THRESHOLDS)
    seg = seg_from_overlap(overlap)
    iou = pixel_iou(ground_truth, prediction)
    dice = pixel_dice(ground_truth, prediction)
    row = {
        **_matching_columns(statistics(DEFAULT_THRESHOLDS, overlap.shape[0] - 1,
                                        overlap.shape[1] - 1, tp, iou_sum)),
        "seg": float(seg.mean()) if seg.size else math.nan,
        "rand_error": rand_error(ground_truth, prediction),
        "vi_error": variation_of_information_error(ground_truth, prediction),
        # a 2D topological measure: not defined for volumes
        "warping_error": (warping_error(ground_truth, prediction) if ground_truth.ndim == 2
                          else math.nan),
        "iou_foreground": float(iou[1]), "iou_background": float(iou[0]),
        "dice_foreground": float(dice[1]), "dice_background": float(dice[0]),
    }
    curve = None
    if cell_probability is not None:
        cell_probability = check_cell_probability(cell_probability, ground_truth.shape)
        curve = rand_curve(ground_truth, cell_probability, ISBI_THRESHOLDS)
        row["rand_error_isbi"], row["rand_threshold"] = best_threshold(curve, ISBI_THRESHOLDS)
    return ImageScores(row, tp, iou_sum, seg, curve)


def evaluate_labels(ground_truth, prediction, *, cell_probability=None) -> dict[str, float]:
    """All measures for one pair of instance label images, keyed as in :data:`METRICS`.

    Args:
        prediction, ground_truth: 2D instance label images (or 3D volumes) of one shape; the
            warping error of volumes is NaN (it is defined in 2D).
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
    return image_scores(ground_truth, prediction, cell_probability).row


def mean_of(values) -> float:
    values = [value for value in values if not math.isnan(value)]
    return float(np.mean(values)) if values else math.nan


def pooled_row(rows: list[dict], scores: Sequence[ImageScores]) -> dict:
    """The dataset row: see :data:`POOLING`."""
    dataset = {name: mean_of(row[name] for row in rows) for name in rows[0] if name != "image"}
    dataset.update(_matching_columns(statistics(
        DEFAULT_THRESHOLDS, sum(row["n_true"] for row in rows), sum(row["n_pred"] for row in rows),
        sum(score.tp for score in scores), sum(score.iou_sum for score in scores))))
    seg = np.concatenate([score.seg for score in scores])
    dataset["seg"] = float(seg.mean()) if seg.size else math.nan
    curves = [score.rand_curve for score in scores if score.rand_curve is not None]
    if curves:
        curves = np.stack(curves)
        counted = (~np.isnan(curves)).sum(0)
        mean_curve = np.where(counted > 0, np.nansum(curves, 0) / np.maximum(counted, 1), np.nan)
        dataset["rand_error_isbi"], dataset["rand_threshold"] = best_threshold(
            mean_curve, ISBI_THRESHOLDS)
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
        return {name: mean_of(row[name] for row in self.rows) for name in self.columns}

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
        ``"pooling"`` (:data:`POOLING`); NaN is written as null. Both files are written whole
        under temporary names and then renamed (:mod:`keras_unet.io.atomic`): with
        ``overwrite`` an earlier report stays as it was until the new one is complete.

        Raises:
            FileExistsError: if either file exists and ``overwrite`` is false.

        Example:
            >>> import tempfile
            >>> report = EvaluationReport([{"image": "a.png", **dict.fromkeys(METRICS, 1.0)}])
            >>> [os.path.basename(p) for p in report.save(tempfile.mkdtemp())]
            ['evaluation.csv', 'evaluation.json']
        """
        paths = report_paths(folder, overwrite=overwrite)
        os.makedirs(folder, exist_ok=True)
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=["image", *self.columns])
        writer.writeheader()
        writer.writerows(self.rows + [{"image": "mean", **self.mean},
                                      {"image": "dataset", **self.dataset}])
        document = {"images": self.rows, "dataset": self.dataset, "mean": self.mean,
                    "pooling": self.pooling}
        document = {key: [{k: _json_value(v) for k, v in row.items()} for row in value]
                    if isinstance(value, list) else
                    {k: _json_value(v) for k, v in value.items()} if isinstance(value, dict)
                    else value for key, value in document.items()}
        for path, text in zip(paths, (table.getvalue(), json.dumps(document, indent=2))):
            with written_atomically(Path(path), overwrite=overwrite,
                                    option="--report file") as temporary:
                temporary.write_text(text, newline="")
        return paths


REPORT_FILES = ("evaluation.csv", "evaluation.json")
"""What :meth:`EvaluationReport.save` writes into its folder."""


def report_paths(folder: str | os.PathLike, *, overwrite: bool = False) -> tuple[str, str]:
    """The report files of ``folder``, refused before any work when they cannot be written.

    Raises:
        NotADirectoryError: if ``folder`` is a file.
        FileExistsError: if a report file exists and ``overwrite`` is false.

    Example:
        >>> [os.path.basename(p) for p in report_paths("runs/evaluation")]
        ['evaluation.csv', 'evaluation.json']
    """
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise NotAFolderError(f"--report {str(folder)!r} is a file; expected a folder for "
                              f"{' and '.join(REPORT_FILES)}.")
    paths = tuple(os.path.join(folder, name) for name in REPORT_FILES)
    for path in paths:
        refuse_existing(Path(path), overwrite=overwrite, option="--report file")
    return paths


CLASS_POOLING = ("mean row: every column averaged over the images, NaN (a class absent from "
                 "both truth and prediction) left out. dataset row: IoU and Dice from the pixel "
                 "counts summed over the images. mean_iou, mean_dice: the mean over the classes "
                 "other than background (class 0); unlabelled pixels are left out.")
"""How the summary rows of :func:`evaluate_classes` pool the images."""


def class_columns(intersection: np.ndarray, predicted: np.ndarray, true: np.ndarray,
                   names: Sequence[str]) -> dict:
    iou = ratio(intersection, predicted + true - intersection)
    dice = ratio(2 * intersection, predicted + true)
    row = {f"iou_{name}": float(value) for name, value in zip(names, iou)}
    row.update({f"dice_{name}": float(value) for name, value in zip(names, dice)})
    row["mean_iou"], row["mean_dice"] = mean_of(iou[1:].tolist()), mean_of(dice[1:].tolist())
    return row
