"""The label images every measure takes: checked alike, and unlabelled pixels left out alike.

Instance label images hold 0 (background) and 1..N (objects); the ground truth of partial
annotations also holds :data:`keras_unet.class_layout.UNLABELLED` (-1) where nobody labelled.
Object measures see neither the truth nor the prediction there (:func:`without_unlabelled`);
pixel measures skip those pixels (:mod:`keras_unet.evaluation.pixel`).
"""

from __future__ import annotations

import numpy as np

from keras_unet.class_layout import UNLABELLED
from keras_unet.errors import InputError


def without_unlabelled(truth, *predictions):
    """``truth`` and each prediction (labels or probabilities) set to 0 where ``truth`` is
    unlabelled, so that no object is counted there; as they are without unlabelled pixels.

    Example:
        >>> truth = np.array([[1, -1, 2]])
        >>> [a.tolist() for a in without_unlabelled(truth, np.array([[3, 3, 0]]))]
        [[[1, 0, 2]], [[3, 0, 0]]]
    """
    truth = np.asarray(truth)
    unlabelled = truth == UNLABELLED
    if not unlabelled.any():
        return (truth, *(np.asarray(p) for p in predictions))
    return (np.where(unlabelled, 0, truth),
            *(np.where(unlabelled, 0, np.asarray(p)) for p in predictions))


def check_label_values(name: str, array: np.ndarray) -> None:
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise InputError(f"{name} must hold integer labels, got dtype {array.dtype}.")
    if array.size and array.min() < 0:
        raise InputError(f"{name} has negative labels; expected 0 (background) and up.")


def check_label_images(names: tuple[str, str], first, second,
                  ndims: tuple[int, ...] = (2,)) -> tuple[np.ndarray, np.ndarray]:
    first, second = np.asarray(first), np.asarray(second)
    if first.shape != second.shape or first.ndim not in ndims:
        kind = " or ".join(f"{ndim}D" for ndim in ndims)
        raise InputError(f"{names[0]} and {names[1]} must be {kind} label images of one shape, "
                         f"got {first.shape} and {second.shape}.")
    for name, array in zip(names, (first, second)):
        check_label_values(name, array)
    return first.astype(np.int64), second.astype(np.int64)


def check_pair(ground_truth, prediction) -> tuple[np.ndarray, np.ndarray]:
    """Two label images (or volumes) of one shape."""
    return check_label_images(("ground_truth", "prediction"), ground_truth, prediction,
                              ndims=(2, 3))


def check_thresholds(thresholds, interval: str) -> tuple[tuple[float, ...], bool]:
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
