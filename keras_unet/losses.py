"""Losses for U-Net segmentation: the paper's weighted cross-entropy, Dice, and their sum.

Every loss takes sparse integer labels ``(B, H, W)`` or ``(B, H, W, 1)`` and class scores
``(B, H', W', K)``. Labels (and pixel weight maps) larger than the prediction, as a valid-padding
model produces, are centre-cropped to it. All of them compute in float32 whatever the
mixed-precision policy.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_unet.layers import crop_to_match


def _sparse_labels(y_true, y_pred):
    """Crops labels to the prediction and drops a trailing channel axis of size 1."""
    y_true = crop_to_match(y_true, y_pred)
    if len(y_true.shape) == 4:
        y_true = ops.squeeze(y_true, axis=-1)
    return ops.cast(y_true, "int32")


def _crop_pixel_weights(sample_weight, y_pred):
    """Crops a per-pixel weight map to the prediction; per-sample weights broadcast over pixels."""
    if sample_weight is None:
        return None
    sample_weight = ops.convert_to_tensor(sample_weight)
    if len(sample_weight.shape) == 1:
        sample_weight = ops.reshape(sample_weight, (-1, 1, 1))
    elif len(sample_weight.shape) >= 3:
        sample_weight = crop_to_match(sample_weight, y_pred)
        if len(sample_weight.shape) == 4:
            sample_weight = ops.squeeze(sample_weight, axis=-1)
    return sample_weight


def weighted_crossentropy(y_true, y_pred, class_weights=None, from_logits=False):
    """Pixel-wise soft-max cross-entropy, optionally weighted per class.

    ``loss(x) = class_weights[l(x)] * -log p_{l(x)}(x)`` for each pixel ``x`` with label ``l(x)``.
    The paper's weight map multiplies this per pixel through ``sample_weight`` (see
    :class:`WeightedCrossentropy`).

    Args:
        y_true: integer labels ``(B, H, W)`` or ``(B, H, W, 1)``, at least as large as ``y_pred``.
        y_pred: probabilities (or logits) ``(B, H', W', K)``.
        class_weights: optional sequence of ``K`` per-class factors.
        from_logits: whether ``y_pred`` holds logits.

    Returns:
        float32 per-pixel losses ``(B, H', W')``.

    Example:
        >>> import numpy as np
        >>> p = np.array([[[[0.9, 0.1], [0.2, 0.8]]]], "float32")  # (1, 1, 2, 2)
        >>> np.round(weighted_crossentropy(np.array([[[0, 1]]]), p).numpy(), 4).tolist()
        [[[0.1054, 0.2231]]]
    """
    y_pred = ops.cast(y_pred, "float32")
    labels = _sparse_labels(y_true, y_pred)
    losses = keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=from_logits)
    if class_weights is not None:
        losses = losses * ops.take(ops.convert_to_tensor(class_weights, "float32"), labels)
    return losses


def soft_dice(y_true, y_pred, class_ids=None, from_logits=False):
    """Soft Dice loss per image: ``1 - 2|X∩Y| / (|X|+|Y|)`` averaged over ``class_ids``.

    Builds on ``keras.losses.dice`` over the spatial axes of one-hot labels and probabilities.

    Args:
        y_true: integer labels ``(B, H, W)`` or ``(B, H, W, 1)``.
        y_pred: probabilities (or logits) ``(B, H', W', K)``.
        class_ids: classes to average over (default: all).
        from_logits: whether ``y_pred`` holds logits (softmax is applied).

    Returns:
        float32 losses ``(B,)``.

    Example:
        >>> import numpy as np
        >>> p = np.array([[[[1.0, 0.0], [0.0, 1.0]]]], "float32")
        >>> soft_dice(np.array([[[0, 1]]]), p).numpy().round(4).tolist()
        [0.0]
    """
    y_pred = ops.cast(y_pred, "float32")
    if from_logits:
        y_pred = ops.softmax(y_pred, axis=-1)
    num_classes = y_pred.shape[-1]
    labels = ops.one_hot(_sparse_labels(y_true, y_pred), num_classes, dtype="float32")
    per_class = keras.losses.dice(labels, y_pred, axis=(1, 2))
    if class_ids is not None:
        per_class = ops.take(per_class, ops.convert_to_tensor(class_ids, "int32"), axis=-1)
    return ops.mean(per_class, axis=-1)


@keras.saving.register_keras_serializable(package="keras_unet")
class WeightedCrossentropy(keras.losses.Loss):
    """The paper's pixel-weighted soft-max cross-entropy, ``E = sum_x w(x) log p_l(x)(x)``.

    The weight map ``w(x)`` (see :func:`keras_unet.weight_map`) arrives as Keras
    ``sample_weight`` of shape ``(B, H, W)``: yield ``(image, label, weight)`` from the dataset, or
    pass it to ``model.fit(sample_weight=...)``. With the default reduction the value is the mean
    over all pixels of ``w(x) * class_weights[l(x)] * -log p_l(x)(x)``. Labels and weight maps
    larger than the prediction (valid padding) are centre-cropped to it.

    Args:
        class_weights: optional sequence of ``K`` per-class factors.
        from_logits: whether the model outputs logits.
        reduction: a Keras reduction (default ``"sum_over_batch_size"``, a mean over pixels).
        name: loss name.

    Example:
        >>> import numpy as np
        >>> loss = WeightedCrossentropy()
        >>> p = np.full((1, 2, 2, 2), 0.5, "float32")
        >>> labels = np.zeros((1, 4, 4), "int32")          # cropped to 2x2
        >>> w = np.ones((1, 4, 4), "float32"); w[0, 1, 1] = 3.0
        >>> round(float(loss(labels, p, sample_weight=w)), 4)  # ln 2 * (3+1+1+1) / 4
        1.0397
    """

    def __init__(
        self,
        class_weights: Sequence[float] | None = None,
        from_logits: bool = False,
        reduction: str = "sum_over_batch_size",
        name: str = "weighted_crossentropy",
    ):
        super().__init__(name=name, reduction=reduction, dtype="float32")
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.from_logits = from_logits

    def __call__(self, y_true, y_pred, sample_weight=None):
        return super().__call__(y_true, y_pred, _crop_pixel_weights(sample_weight, y_pred))

    def call(self, y_true, y_pred):
        return weighted_crossentropy(y_true, y_pred, self.class_weights, self.from_logits)

    def get_config(self):
        return {
            **super().get_config(),
            "class_weights": self.class_weights,
            "from_logits": self.from_logits,
        }


@keras.saving.register_keras_serializable(package="keras_unet")
class DiceLoss(keras.losses.Loss):
    """Soft Dice loss over sparse labels, averaged over classes and images.

    Dice is a region-overlap criterion: per-pixel weight maps do not apply to it and are ignored;
    per-sample weights ``(B,)`` are honoured. Combine it with the weighted cross-entropy through
    :class:`CrossentropyDiceLoss` to keep the paper's border emphasis.

    Args:
        class_ids: classes to average over (default: all; ``[1]`` for foreground only).
        from_logits: whether the model outputs logits.
        reduction: a Keras reduction over images.
        name: loss name.

    Example:
        >>> import numpy as np
        >>> p = np.array([[[[0.5, 0.5], [0.5, 0.5]]]], "float32")
        >>> round(float(DiceLoss()(np.array([[[0, 1]]]), p)), 4)
        0.5
    """

    def __init__(
        self,
        class_ids: Sequence[int] | None = None,
        from_logits: bool = False,
        reduction: str = "sum_over_batch_size",
        name: str = "dice_loss",
    ):
        super().__init__(name=name, reduction=reduction, dtype="float32")
        self.class_ids = None if class_ids is None else [int(c) for c in class_ids]
        self.from_logits = from_logits

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None and len(ops.shape(sample_weight)) > 1:
            sample_weight = None  # a pixel weight map: not meaningful for a region overlap
        return super().__call__(y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred):
        return soft_dice(y_true, y_pred, self.class_ids, self.from_logits)

    def get_config(self):
        return {
            **super().get_config(),
            "class_ids": self.class_ids,
            "from_logits": self.from_logits,
        }


@keras.saving.register_keras_serializable(package="keras_unet")
class CrossentropyDiceLoss(keras.losses.Loss):
    """``crossentropy_weight * WeightedCrossentropy + dice_weight * DiceLoss``.

    The pixel weight map (``sample_weight`` ``(B, H, W)``) weights the cross-entropy term.

    Args:
        crossentropy_weight: factor of the weighted cross-entropy term.
        dice_weight: factor of the Dice term.
        class_weights: per-class factors of the cross-entropy term.
        dice_class_ids: classes the Dice term averages over (default: all).
        from_logits: whether the model outputs logits.
        name: loss name.

    Example:
        >>> import numpy as np
        >>> p = np.array([[[[0.5, 0.5], [0.5, 0.5]]]], "float32")
        >>> round(float(CrossentropyDiceLoss()(np.array([[[0, 1]]]), p)), 4)  # ln 2 + 0.5
        1.1931
    """

    def __init__(
        self,
        crossentropy_weight: float = 1.0,
        dice_weight: float = 1.0,
        class_weights: Sequence[float] | None = None,
        dice_class_ids: Sequence[int] | None = None,
        from_logits: bool = False,
        name: str = "crossentropy_dice_loss",
    ):
        super().__init__(name=name, dtype="float32")
        self.crossentropy_weight = float(crossentropy_weight)
        self.dice_weight = float(dice_weight)
        self.crossentropy = WeightedCrossentropy(class_weights, from_logits)
        self.dice = DiceLoss(dice_class_ids, from_logits)

    def __call__(self, y_true, y_pred, sample_weight=None):
        return (self.crossentropy_weight * self.crossentropy(y_true, y_pred, sample_weight)
                + self.dice_weight * self.dice(y_true, y_pred, sample_weight))

    def get_config(self):
        return {
            "name": self.name,
            "crossentropy_weight": self.crossentropy_weight,
            "dice_weight": self.dice_weight,
            "class_weights": self.crossentropy.class_weights,
            "dice_class_ids": self.dice.class_ids,
            "from_logits": self.crossentropy.from_logits,
        }
