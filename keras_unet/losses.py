"""Losses for U-Net segmentation: the paper's weighted cross-entropy, Dice, and their sum.

Every loss takes sparse integer labels ``(B, H, W)`` or ``(B, H, W, 1)`` and scores of ``K >= 2``
exclusive classes ``(B, H', W', K)`` (softmax probabilities, or logits with ``from_logits``);
volumes alike, with one more spatial axis (``(B, D, H, W)`` labels, ``(B, D', H', W', K)``
scores).
Labels and pixel weight maps larger than the prediction, as a valid-padding model produces, are
centre-cropped to it. The functions compute in the dtype of the prediction; the loss classes, like
Keras's, in their ``dtype`` (float32 by default, whatever the mixed-precision policy), give one
value per image and reduce those with their Keras ``reduction``.

Unlabelled pixels (partial annotations) never reach a loss: negative labels
(:data:`keras_unet.class_layout.UNLABELLED`, what :func:`keras_unet.data.make_dataset` gives
them) and, optionally, an ``ignore_class`` value contribute exactly 0 whatever is predicted there,
and the Dice terms leave them out of both the prediction and the truth.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_unet.errors import InputError
from keras_unet.layers import checked_class_ids, crop_to_match, split_weights


def _scores(y_pred):
    """The prediction as a float tensor, checked to hold at least two classes."""
    y_pred = ops.convert_to_tensor(y_pred)
    if not keras.backend.is_float_dtype(y_pred.dtype):
        y_pred = ops.cast(y_pred, "float32")
    if y_pred.shape[-1] is not None and y_pred.shape[-1] < 2:
        raise InputError(
            f"the losses need scores of K >= 2 exclusive classes, got shape {y_pred.shape}: "
            "a two-class softmax is the sigmoid's equivalent; build the model with num_classes=2."
        )
    return y_pred


def _spatial_axes(y_pred) -> tuple[int, ...]:
    """The spatial axes of channels-last scores: (1, 2) for images, (1, 2, 3) for volumes."""
    return tuple(range(1, len(y_pred.shape) - 1))


def _sparse_labels(y_true, y_pred, ignore_class=None):
    """``(labels, labelled)``: labels cropped to the prediction (a trailing channel axis of size 1
    dropped) with unlabelled pixels set to class 0, and the bool mask of the labelled ones."""
    y_true = crop_to_match(y_true, y_pred)
    if len(y_true.shape) == len(y_pred.shape):  # a trailing channel axis
        y_true = ops.squeeze(y_true, axis=-1)
    labels = ops.cast(y_true, "int32")
    labelled = ops.greater_equal(labels, 0)
    if ignore_class is not None:
        labelled = ops.logical_and(labelled, ops.not_equal(labels, int(ignore_class)))
    return checked_class_ids(labels, labelled, y_pred.shape[-1]), labelled


def weighted_crossentropy(y_true, y_pred, class_weights=None, from_logits=False,
                          pixel_weights=None, ignore_class=None):
    """Pixel-wise soft-max cross-entropy, optionally weighted per class and per pixel.

    ``loss(x) = w(x) * class_weights[l(x)] * -log p_{l(x)}(x)`` for each pixel ``x`` with label
    ``l(x)`` and weight map ``w`` (the paper's, see :func:`keras_unet.weight_map`); 0 at
    unlabelled pixels (a negative label or ``ignore_class``).

    Args:
        y_true: integer labels ``(B, H, W)`` or ``(B, H, W, 1)``, at least as large as ``y_pred``.
        y_pred: probabilities (or logits) ``(B, H', W', K)``.
        class_weights: optional sequence of ``K`` per-class factors.
        from_logits: whether ``y_pred`` holds logits.
        pixel_weights: optional weight map ``(B, H, W)`` or ``(B, H, W, 1)``, centre-cropped.
        ignore_class: optional label value of unlabelled pixels (negative labels always are).

    Returns:
        per-pixel losses ``(B, H', W')``.

    Example:
        >>> import numpy as np
        >>> p = np.array([[[[0.9, 0.1], [0.2, 0.8]]]], "float32")  # (1, 1, 2, 2)
        >>> np.round(weighted_crossentropy(np.array([[[0, 1]]]), p).numpy(), 4).tolist()
        [[[0.1054, 0.2231]]]
        >>> w = np.array([[[1.0, 2.0]]], "float32")
        >>> np.round(weighted_crossentropy(np.array([[[0, 1]]]), p, pixel_weights=w), 4).tolist()
        [[[0.1054, 0.4463]]]
        >>> weighted_crossentropy(np.array([[[-1, 7]]]), p, ignore_class=7).numpy().tolist()
        [[[0.0, 0.0]]]
    """
    y_pred = _scores(y_pred)
    labels, labelled = _sparse_labels(y_true, y_pred, ignore_class)
    losses = keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=from_logits)
    losses = ops.where(labelled, losses, ops.zeros_like(losses))
    if class_weights is not None:
        if y_pred.shape[-1] is not None and len(class_weights) != y_pred.shape[-1]:
            raise InputError(f"class_weights gives {len(class_weights)} factors, but the "
                             f"prediction has {y_pred.shape[-1]} classes: give one per class.")
        losses = losses * ops.take(ops.convert_to_tensor(class_weights, losses.dtype), labels)
    if pixel_weights is not None:
        pixel_weights = crop_to_match(pixel_weights, y_pred)
        if len(pixel_weights.shape) == len(y_pred.shape):
            pixel_weights = ops.squeeze(pixel_weights, axis=-1)
        losses = losses * ops.cast(pixel_weights, losses.dtype)
    return losses


def soft_dice(y_true, y_pred, class_ids=None, from_logits=False, smooth=1.0,
              ignore_class=None):
    """Smoothed soft Dice loss per image, ``1 - (2|X∩Y| + s) / (|X| + |Y| + s)``, class-averaged.

    The smoothing ``s`` in numerator and denominator (Milletari et al. 2016 style, ``s = 1``) makes
    a class absent from an image score 0 only if none of it is predicted, so false positives on
    tiles without cells get a gradient; with ``s`` only in the denominator the loss would be a
    constant 1 there. Chosen over a batch-wide Dice to keep one value per image, as the Keras
    reductions and per-image weights expect.

    Args:
        y_true: integer labels ``(B, H, W)`` or ``(B, H, W, 1)``.
        y_pred: probabilities (or logits) ``(B, H', W', K)``.
        class_ids: classes to average over (default: all).
        from_logits: whether ``y_pred`` holds logits (softmax is applied).
        smooth: the smoothing ``s`` (> 0).
        ignore_class: optional label value of unlabelled pixels (negative labels always are);
            they count in neither ``X`` nor ``Y``.

    Returns:
        losses ``(B,)``.

    Example:
        >>> import numpy as np
        >>> p = np.array([[[[1.0, 0.0], [0.0, 1.0]]]], "float32")
        >>> soft_dice(np.array([[[0, 1]]]), p).numpy().round(4).tolist()
        [0.0]
        >>> empty = np.zeros((1, 1, 2), "int32")      # no foreground: 1 - 1 / (0.5 + 0.5 + 1)
        >>> soft_dice(empty, np.full((1, 1, 2, 2), 0.5, "float32"), [1]).numpy().round(4).tolist()
        [0.5]
    """
    y_pred = _scores(y_pred)
    if from_logits:
        y_pred = ops.softmax(y_pred, axis=-1)
    labels, labelled = _sparse_labels(y_true, y_pred, ignore_class)
    labelled = ops.expand_dims(ops.cast(labelled, y_pred.dtype), -1)
    labels = ops.one_hot(labels, y_pred.shape[-1], dtype=y_pred.dtype) * labelled
    y_pred = y_pred * labelled
    spatial = _spatial_axes(y_pred)
    intersection = ops.sum(labels * y_pred, axis=spatial)
    total = ops.sum(labels, axis=spatial) + ops.sum(y_pred, axis=spatial)
    per_class = 1.0 - (2.0 * intersection + smooth) / (total + smooth)
    if class_ids is not None:
        if y_pred.shape[-1] is not None and not all(0 <= int(c) < y_pred.shape[-1]
                                                    for c in class_ids):
            raise InputError(f"class_ids {list(class_ids)} name classes the prediction does not "
                             f"have (ids 0..{y_pred.shape[-1] - 1}).")
        per_class = ops.take(per_class, ops.convert_to_tensor(class_ids, "int32"), axis=-1)
    return ops.mean(per_class, axis=-1)


def crossentropy_dice(y_true, y_pred, crossentropy_weight=1.0, dice_weight=1.0,
                      class_weights=None, dice_class_ids=None, from_logits=False,
                      dice_smooth=1.0, pixel_weights=None, ignore_class=None):
    """Per image: ``crossentropy_weight * mean weighted cross-entropy + dice_weight * Dice``.

    The cross-entropy term is :func:`weighted_crossentropy` averaged over the image's pixels (the
    weight map weights it); the Dice term is :func:`soft_dice`, which no weight map touches.

    Args:
        y_true, y_pred, class_weights, from_logits, pixel_weights, ignore_class: as
            :func:`weighted_crossentropy`.
        crossentropy_weight, dice_weight: factors of the two terms.
        dice_class_ids, dice_smooth: ``class_ids`` and ``smooth`` of :func:`soft_dice`.

    Returns:
        losses ``(B,)``.

    Example:
        >>> import numpy as np
        >>> p = np.full((1, 1, 2, 2), 0.5, "float32")
        >>> crossentropy_dice(np.array([[[0, 1]]]), p).numpy().round(4).tolist()  # ln 2 + 1/3
        [1.0265]
    """
    crossentropy = weighted_crossentropy(y_true, y_pred, class_weights, from_logits, pixel_weights,
                                         ignore_class)
    dice = soft_dice(y_true, y_pred, dice_class_ids, from_logits, dice_smooth, ignore_class)
    return (crossentropy_weight * ops.mean(crossentropy, axis=_spatial_axes(y_pred))
            + dice_weight * dice)


def _labels_and_map(y_true):
    """``(labels, weight map or None)`` from what ``_SegmentationLoss.__call__`` gives ``call``."""
    return y_true if isinstance(y_true, tuple) else (y_true, None)


class _SegmentationLoss(keras.losses.Loss):
    """A per-image loss of labels, scores and an optional pixel weight map, as a Keras loss.

    ``get_config`` is Keras's (name, reduction) plus ``dtype`` and the keyword arguments the
    subclass hands to ``__init__`` (its own constructor arguments), so ``from_config`` rebuilds it.
    """

    def __init__(self, name: str, reduction: str | None, dtype, **arguments):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._arguments = arguments

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Why an override: Keras's Loss.__call__ multiplies sample_weight onto what call() returns,
        # after call(), with no way to crop it (keras/src/losses/loss.py, reduce_weighted_values).
        # The paper's weight map arrives as sample_weight at the label's (input) size, larger than
        # a valid-padding output, and must weight pixels inside the cross-entropy, not the
        # per-image values or the Dice term. So a map (rank >= 3) travels into call() with the
        # labels, which crops it like them; per-image weights stay Keras's sample_weight, and the
        # reduction and dtype handling remain entirely Keras's.
        if sample_weight is not None:
            sample_weight = ops.convert_to_tensor(sample_weight)
            if sample_weight.shape.rank is None:  # a step traced again for another rank
                pixels, sample_weight = split_weights(sample_weight, y_true)
                y_true = (y_true, pixels)
            elif len(sample_weight.shape) >= 3:
                y_true, sample_weight = (y_true, sample_weight), None
            else:
                sample_weight = ops.reshape(sample_weight, (-1,))
        return super().__call__(y_true, y_pred, sample_weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "dtype": self.dtype, **self._arguments}


@keras.saving.register_keras_serializable(package="keras_unet")
class WeightedCrossentropy(_SegmentationLoss):
    """The paper's pixel-weighted soft-max cross-entropy, ``E = sum_x w(x) log p_l(x)(x)``.

    The weight map ``w(x)`` (see :func:`keras_unet.weight_map`) arrives as Keras
    ``sample_weight`` of shape ``(B, H, W)``: yield ``(image, label, weight)`` from the dataset, or
    pass it to ``model.fit(sample_weight=...)``; per-image weights ``(B,)`` work too. Each image's
    value is the mean over its pixels of ``w(x) * class_weights[l(x)] * -log p_l(x)(x)``, so the
    default reduction is the mean over all pixels of the batch. Labels and weight maps larger than
    the prediction (valid padding) are centre-cropped to it.

    Args:
        class_weights: optional sequence of ``K`` per-class factors.
        from_logits: whether the model outputs logits.
        reduction: Keras reduction of the per-image values (``"sum_over_batch_size"``: mean;
            ``"sum"``; ``"mean_with_sample_weight"``; ``None`` or ``"none"``: the ``(B,)`` values).
        name: loss name.
        dtype: dtype the loss computes in (default: ``keras.backend.floatx()``, float32).
        ignore_class: optional label value of unlabelled pixels (negative labels always are).

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
        reduction: str | None = "sum_over_batch_size",
        name: str = "weighted_crossentropy",
        dtype: str | None = None,
        ignore_class: int | None = None,
    ):
        super().__init__(
            name, reduction, dtype,
            class_weights=None if class_weights is None else [float(w) for w in class_weights],
            from_logits=bool(from_logits),
            ignore_class=None if ignore_class is None else int(ignore_class),
        )

    def call(self, y_true, y_pred):
        labels, pixel_weights = _labels_and_map(y_true)
        losses = weighted_crossentropy(labels, y_pred, pixel_weights=pixel_weights,
                                       **self._arguments)
        return ops.mean(losses, axis=_spatial_axes(y_pred))


@keras.saving.register_keras_serializable(package="keras_unet")
class DiceLoss(_SegmentationLoss):
    """Smoothed soft Dice loss over sparse labels (:func:`soft_dice`), one value per image.

    Dice is a region-overlap criterion: per-pixel weight maps do not apply to it and are ignored;
    per-image weights ``(B,)`` are honoured. Combine it with the weighted cross-entropy through
    :class:`CrossentropyDiceLoss` to keep the paper's border emphasis.

    Args:
        class_ids: classes to average over (default: all; ``[1]`` for foreground only).
        from_logits: whether the model outputs logits.
        smooth: the smoothing ``s`` of numerator and denominator (see :func:`soft_dice`).
        reduction: Keras reduction of the per-image values (see :class:`WeightedCrossentropy`).
        name: loss name.
        dtype: dtype the loss computes in (default: ``keras.backend.floatx()``, float32).
        ignore_class: optional label value of unlabelled pixels (negative labels always are).

    Example:
        >>> import numpy as np
        >>> p = np.array([[[[0.5, 0.5], [0.5, 0.5]]]], "float32")
        >>> round(float(DiceLoss()(np.array([[[0, 1]]]), p)), 4)  # 1 - (2 * 0.5 + 1) / (2 + 1)
        0.3333
    """

    def __init__(
        self,
        class_ids: Sequence[int] | None = None,
        from_logits: bool = False,
        smooth: float = 1.0,
        reduction: str | None = "sum_over_batch_size",
        name: str = "dice_loss",
        dtype: str | None = None,
        ignore_class: int | None = None,
    ):
        super().__init__(
            name, reduction, dtype,
            class_ids=None if class_ids is None else [int(c) for c in class_ids],
            from_logits=bool(from_logits),
            smooth=float(smooth),
            ignore_class=None if ignore_class is None else int(ignore_class),
        )

    def call(self, y_true, y_pred):
        labels, _ = _labels_and_map(y_true)
        return soft_dice(labels, y_pred, **self._arguments)


@keras.saving.register_keras_serializable(package="keras_unet")
class CrossentropyDiceLoss(_SegmentationLoss):
    """``crossentropy_weight * WeightedCrossentropy + dice_weight * DiceLoss``, per image.

    See :func:`crossentropy_dice`: the pixel weight map (``sample_weight`` ``(B, H, W)``) weights
    the cross-entropy term only; per-image weights ``(B,)`` weight the sum.

    Args:
        crossentropy_weight: factor of the weighted cross-entropy term.
        dice_weight: factor of the Dice term.
        class_weights: per-class factors of the cross-entropy term.
        dice_class_ids: classes the Dice term averages over (default: all).
        from_logits: whether the model outputs logits.
        dice_smooth: the smoothing of the Dice term (see :func:`soft_dice`).
        reduction: Keras reduction of the per-image values (see :class:`WeightedCrossentropy`).
        name: loss name.
        dtype: dtype the loss computes in (default: ``keras.backend.floatx()``, float32).
        ignore_class: optional label value of unlabelled pixels (negative labels always are).

    Example:
        >>> import numpy as np
        >>> p = np.array([[[[0.5, 0.5], [0.5, 0.5]]]], "float32")
        >>> round(float(CrossentropyDiceLoss()(np.array([[[0, 1]]]), p)), 4)  # ln 2 + 1/3
        1.0265
    """

    def __init__(
        self,
        crossentropy_weight: float = 1.0,
        dice_weight: float = 1.0,
        class_weights: Sequence[float] | None = None,
        dice_class_ids: Sequence[int] | None = None,
        from_logits: bool = False,
        dice_smooth: float = 1.0,
        reduction: str | None = "sum_over_batch_size",
        name: str = "crossentropy_dice_loss",
        dtype: str | None = None,
        ignore_class: int | None = None,
    ):
        super().__init__(
            name, reduction, dtype,
            crossentropy_weight=float(crossentropy_weight),
            dice_weight=float(dice_weight),
            class_weights=None if class_weights is None else [float(w) for w in class_weights],
            dice_class_ids=None if dice_class_ids is None else [int(c) for c in dice_class_ids],
            from_logits=bool(from_logits),
            dice_smooth=float(dice_smooth),
            ignore_class=None if ignore_class is None else int(ignore_class),
        )

    def call(self, y_true, y_pred):
        labels, pixel_weights = _labels_and_map(y_true)
        return crossentropy_dice(labels, y_pred, pixel_weights=pixel_weights, **self._arguments)
