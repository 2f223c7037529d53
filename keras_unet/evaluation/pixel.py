"""Pixel measures: IoU and Dice of every class, unlabelled pixels left out.

Example:
    >>> pixel_iou(np.array([[0, 1, 1]]), np.array([[0, 1, 0]])).tolist()
    [0.5, 0.5]
"""

from __future__ import annotations

import numpy as np

from keras_unet.class_layout import UNLABELLED
from keras_unet.errors import InputError
from keras_unet.evaluation.label_images import check_pair


def class_counts(ground_truth, prediction, num_classes: int):
    """Per class: pixels in both, predicted, true (labelled pixels only).

    Example:
        >>> [c.tolist() for c in class_counts(np.array([[0, 1]]), np.array([[1, 1]]), 2)]
        [[0.0, 1.0], [0.0, 2.0], [1.0, 1.0]]
    """
    ground_truth, prediction = np.asarray(ground_truth), np.asarray(prediction)
    if ground_truth.shape == prediction.shape and (ground_truth == UNLABELLED).any():
        labelled = ground_truth != UNLABELLED  # partial annotations: score labelled pixels
        ground_truth, prediction = ground_truth[labelled][None], prediction[labelled][None]
    ground_truth, prediction = check_pair(ground_truth, prediction)
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


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, NaN where the denominator is 0.

    Example:
        >>> ratio(np.array([1.0, 0.0]), np.array([2.0, 0.0])).tolist()
        [0.5, nan]
    """
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
    intersection, predicted, true = class_counts(ground_truth, prediction, num_classes)
    return ratio(intersection, predicted + true - intersection)


def pixel_dice(ground_truth, prediction, num_classes: int = 2) -> np.ndarray:
    """Dice coefficient of every class, ``2 |P ∩ G| / (|P| + |G|)`` (NaN for absent classes).

    Example:
        >>> pixel_dice(np.array([[0, 0, 2, 2]]), np.array([[0, 1, 1, 1]])).tolist()
        [0.6666666666666666, 0.8]
    """
    intersection, predicted, true = class_counts(ground_truth, prediction, num_classes)
    return ratio(2 * intersection, predicted + true)
