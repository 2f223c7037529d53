"""Predict and score: a model's probabilities turned into cells and scored per image and for the
dataset, per-class scores of semantic masks, and the ``min_size`` ``unet train`` chooses.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence

import numpy as np

from keras_unet.class_layout import ClassLayout, default_class_names
from keras_unet.errors import InputError
from keras_unet.evaluation.label_images import without_unlabelled
from keras_unet.evaluation.matching import matching_dataset
from keras_unet.evaluation.pixel import class_counts
from keras_unet.evaluation.report import (
    CLASS_POOLING,
    EvaluationReport,
    class_columns,
    image_scores,
    pooled_row,
)
from keras_unet.geometry import PREDICTION_BATCH
from keras_unet.instances.labels import instance_labels
from keras_unet.instances.settings import METHODS, CellSettings


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
        if cell_probability is None:  # partial annotations: objects only where the truth is known
            truth, labels = without_unlabelled(truth, labels)
        else:
            truth, labels, cell_probability = without_unlabelled(truth, labels, cell_probability)
        scores.append(image_scores(truth, labels, cell_probability))
        rows.append({"image": str(sample.path), **scores[-1].row})
    return EvaluationReport(rows, pooled_row(rows, scores))


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
    if probabilities.ndim not in (3, 4) or probabilities.shape[-1] < 1:
        raise InputError(f"probabilities must be (height, width, classes) or (depth, height, "
                         f"width, classes), got shape {probabilities.shape}.")
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


def evaluate_model(model, samples: Sequence, *, tile_size=None, batch_size: int = PREDICTION_BATCH,
                   tta: bool = False) -> EvaluationReport:
    """Scores a model on samples: its probabilities, then :func:`evaluate_probabilities` (cells
    from the probabilities, with the settings the model carries, and the ISBI Rand ranking form).

    ``model`` is a Keras U-Net (predicted by :func:`keras_unet.predict_tiled`), a network of
    :func:`keras_unet.inference.load_network`, or the path of a model file for it to open.

    Example:
        >>> from types import SimpleNamespace
        >>> from keras_unet import build_unet
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> truth = np.zeros((40, 50), "int32"); truth[5:20, 5:20] = 1
        >>> report = evaluate_model(model, [SimpleNamespace(image=truth * 200, labels=truth,
        ...                                                 path="x.png")])
        >>> from keras_unet.evaluation import METRICS, PROBABILITY_METRICS
        >>> report.columns == [*METRICS, *PROBABILITY_METRICS]
        True
    """
    from keras_unet.inference.loading import Network, load_network  # measuring alone never
    from keras_unet.inference.tiled import predict_tiled           # loads the engine

    if isinstance(model, (str, os.PathLike)):
        model = load_network(model)
    options = {"tile_size": tile_size, "batch_size": batch_size, "tta": tta}
    if isinstance(model, Network):
        predict = functools.partial(model.predict, **options)
    else:
        predict = functools.partial(predict_tiled, model, **options)
    return evaluate_probabilities(predict, samples,
                                  to_labels=functools.partial(instance_labels, model=model))


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
        if probabilities.shape[:-1] != truth.shape or probabilities.ndim not in (3, 4):
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
        counts = np.stack(class_counts(truth, probabilities.argmax(-1), num_classes))
        totals = counts if totals is None else totals + counts
        rows.append({"image": str(sample.path), **class_columns(*counts, names)})
    return EvaluationReport(rows, class_columns(*totals, names), CLASS_POOLING)


MIN_SIZE_CANDIDATES = (0, 10, 30, 100)
"""The ``min_size`` values :func:`best_min_size` tries: none, the default, and two larger cut-offs
(100 px suits nuclei of a few hundred pixels, benchmarks/README.md "Instances on real data")."""


def best_min_size(ground_truths: Sequence, probabilities: Sequence, *,
                  candidates: Sequence[int] = MIN_SIZE_CANDIDATES, method: str = "auto",
                  spacing=None) -> tuple[int, dict[int, float]]:
    """The ``min_size`` of :func:`keras_unet.instances.instance_labels` with the best object F1.

    No fixed cut-off suits both cells of 14 px and nuclei of 600, so ``unet train`` picks it
    on its validation images, as StarDist picks its probability threshold there: object F1 at
    IoU 0.5 (:func:`matching_dataset`) of the cells of every candidate; the smallest wins a tie.

    Args:
        ground_truths: instance labels, one per image (unlabelled pixels, -1, are left out of
            truth and cells).
        probabilities: ``(H, W, K)`` class probabilities of the same images.
        candidates: the ``min_size`` values to try.
        method: the ``instance_labels`` method.
        spacing: the voxel size of volumes, for ``instance_labels``.

    Returns:
        ``(min_size, {candidate: F1})``.

    Example:
        >>> truth = np.zeros((20, 20), "int32"); truth[2:12, 2:12] = 1
        >>> found = truth.copy(); found[15:17, 15:17] = 1  # plus a 4 px speck
        >>> best_min_size([truth], [np.eye(2)[found]], candidates=(0, 10))
        (10, {0: 0.6666666666666666, 10: 1.0})
    """
    ground_truths, probabilities = list(ground_truths), list(probabilities)
    f1 = {int(size): object_f1(ground_truths, probabilities, method=method, min_size=int(size),
                               spacing=spacing)
          for size in candidates}
    best = max(f1.values())
    return min(size for size, value in f1.items() if value == best), f1


def object_f1(ground_truths: Sequence, probabilities: Sequence, **cell_options) -> float:
    """Object F1 at IoU 0.5 of the cells of ``probabilities``, counts pooled over the images.

    The cells are :func:`keras_unet.instances.instance_labels` with ``cell_options`` (``method``,
    ``min_size``, ``model``); unlabelled pixels (-1) of the ground truth are left out of truth
    and cells. What ``unet train`` logs as ``val_object_f1`` each epoch.

    Example:
        >>> truth = np.zeros((20, 20), "int32"); truth[2:12, 2:12] = 1
        >>> object_f1([truth], [np.eye(2)[(truth > 0).astype(int)]])
        1.0
    """
    scored = [without_unlabelled(truth, instance_labels(p, **cell_options))
              for truth, p in zip(ground_truths, probabilities)]
    return float(matching_dataset(*zip(*scored), 0.5).f1)


def best_cell_settings(ground_truths: Sequence, probabilities: Sequence, *,
                       candidates: Sequence[int] = MIN_SIZE_CANDIDATES, spacing=None
                       ) -> tuple[CellSettings, dict[tuple[str, int], float]]:
    """The instance method and ``min_size`` with the best object F1 on labelled images.

    What ``unet train`` chooses on its validation images and records in the model: every
    method of :data:`keras_unet.instances.settings.METHODS` (``"auto"`` and those it does not
    stand for) with every ``min_size`` candidate (:func:`best_min_size`); on a tie ``"auto"``
    wins, then the smaller cut-off.

    Returns:
        ``(settings, {(method, min_size): F1})``.

    Example:
        >>> truth = np.zeros((20, 20), "int32"); truth[2:12, 2:12] = 1
        >>> found = truth.copy(); found[15:17, 15:17] = 1  # plus a 4 px speck
        >>> settings, scores = best_cell_settings([truth], [np.eye(2)[found]], candidates=(0, 10))
        >>> settings.describe(), scores[("auto", 0)]
        ('method auto, min_size 10 (from the validation images)', 0.6666666666666666)
    """
    ground_truths, probabilities = list(ground_truths), list(probabilities)
    auto = ClassLayout.of(np.shape(probabilities[0])[-1]).instance_method
    scores = {}
    for method in [m for m in METHODS if m != auto]:
        _, f1 = best_min_size(ground_truths, probabilities, candidates=candidates, method=method,
                              spacing=spacing)
        scores.update({(method, size): value for size, value in sorted(f1.items())})
    best = max(scores.values())
    method, size = next(key for key, value in scores.items() if value == best)
    return CellSettings(method, size, "the validation images"), scores
