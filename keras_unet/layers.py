"""Layers the U-Net needs that Keras does not ship."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from keras_unet.errors import InputError


@keras.saving.register_keras_serializable(package="keras_unet")
class CropToMatch(keras.layers.Layer):
    """Centre-crops a feature map to the spatial size of a reference tensor.

    The skip connections of the unpadded U-Net carry larger maps than the expanding path they join
    ("the cropping is necessary due to the loss of border pixels in every convolution",
    Ronneberger et al. 2015). Unlike ``keras.layers.Cropping2D`` the amount is read from the
    reference at run time, so the model accepts inputs whose height and width are ``None``.

    Call arguments:
        inputs: a list ``[tensor, reference]`` of channels-last 4D (images) or 5D (volumes)
            tensors; ``tensor`` must be at least as large as ``reference`` along every spatial
            axis.

    Returns:
        ``tensor`` centre-cropped to the spatial size of ``reference``.

    Example:
        >>> import numpy as np
        >>> crop = CropToMatch()
        >>> x = np.arange(36, dtype="float32").reshape(1, 6, 6, 1)
        >>> crop([x, np.zeros((1, 2, 2, 3), "float32")])[0, :, :, 0].numpy().tolist()
        [[14.0, 15.0], [20.0, 21.0]]
    """

    def call(self, inputs):
        tensor, reference = inputs
        return crop_to_match(tensor, reference)

    def compute_output_shape(self, input_shapes):
        tensor_shape, reference_shape = input_shapes
        return (tensor_shape[0], *reference_shape[1:-1], tensor_shape[-1])


def crop_to_match(tensor, reference):
    """Centre-crops the spatial axes of ``tensor`` to the sizes of those axes in ``reference``.

    ``reference`` is channels-last, ``(B, H, W, C)`` or ``(B, D, H, W, C)``: its axes 1 to
    ``rank - 2`` are the spatial ones, and those axes of ``tensor`` are cropped; the rest of
    ``tensor`` (labels ``(B, H, W)``, maps ``(B, H, W, C)``) is kept. Works for sizes only known
    at run time. Used by the losses and metrics so that labels and weight maps the size of a
    valid-padding model's input are compared with its smaller output.

    Example:
        >>> import numpy as np
        >>> labels = np.arange(16).reshape(1, 4, 4)
        >>> crop_to_match(labels, np.zeros((1, 2, 2, 2))).numpy().tolist()
        [[[5, 6], [9, 10]]]
        >>> crop_to_match(np.zeros((1, 6, 8, 8)), np.zeros((1, 2, 4, 4, 3))).shape
        TensorShape([1, 2, 4, 4])
    """
    tensor = ops.convert_to_tensor(tensor)
    shape = ops.shape(tensor)
    target = ops.shape(reference)
    spatial = len(reference.shape) - 2
    sizes, targets = tensor.shape[1:spatial + 1], reference.shape[1:spatial + 1]
    if any(None not in (size, goal) and size < goal for size, goal in zip(sizes, targets)):
        raise InputError(f"cannot centre-crop size {tuple(sizes)} to the larger "
                         f"{tuple(targets)}: labels and weight maps must cover the prediction "
                         "(a valid-padding network's are the size of its input).")
    rank = len(tensor.shape)
    start = [0] + [(shape[i] - target[i]) // 2 for i in range(1, spatial + 1)]
    start += [0] * (rank - 1 - spatial)
    size = [shape[0]] + [target[i] for i in range(1, spatial + 1)]
    size += [shape[i] for i in range(spatial + 1, rank)]
    return ops.slice(tensor, start, size)


def checked_class_ids(labels, labelled, num_classes: int | None):
    """``labels`` (where ``labelled``; 0 elsewhere), after checking at run time that every
    labelled id names one of the prediction's ``num_classes`` classes: an id beyond them (a
    0/255 mask) would otherwise be lost silently (Dice, IoU) or stop the step deep in
    TensorFlow (cross-entropy).

    Example:
        >>> import numpy as np
        >>> checked_class_ids(np.array([[0, 255]]), np.array([[True, True]]), 2)
        Traceback (most recent call last):
        ...
        tensorflow.python.framework.errors_impl.InvalidArgumentError: labels hold a class id ...
    """
    labels = ops.where(labelled, labels, 0)
    if num_classes is None:  # a graph traced without the class axis: nothing to check against
        return labels
    tf.debugging.assert_less(
        labels, ops.cast(num_classes, labels.dtype),
        message=f"labels hold a class id >= {num_classes}, but the prediction has {num_classes} "
                f"classes (ids 0..{num_classes - 1}; negative ids are unlabelled): convert a "
                "0/255 mask to 0/1")
    return labels


def split_weights(sample_weight, labels) -> tuple:
    """``sample_weight`` of unknown rank as ``(pixel map shaped as labels, per-image weights
    (B,))``, ones where it gives none. A ``fit`` step traced again for weights of another rank
    (maps in one call, per-image weights in the next) sees only that rank is unknown; which
    one it is can still be told at run time: one value per image, or one per label pixel.

    Example:
        >>> import numpy as np
        >>> labels = np.zeros((2, 3, 3), "int32")
        >>> pixels, images = split_weights(np.array([2.0, 5.0], "float32"), labels)
        >>> float(pixels.numpy().max()), images.numpy().tolist()
        (1.0, [2.0, 5.0])
        >>> pixels, images = split_weights(np.full((2, 3, 3, 1), 4.0, "float32"), labels)
        >>> pixels.shape, float(pixels.numpy().min()), images.numpy().tolist()
        (TensorShape([2, 3, 3]), 4.0, [1.0, 1.0])
    """
    labels = ops.convert_to_tensor(labels)
    per_image_rows = ops.reshape(sample_weight, (ops.shape(labels)[0], -1))
    ones = ops.ones_like(ops.reshape(ops.cast(labels, per_image_rows.dtype),
                                     (ops.shape(labels)[0], -1)))
    one_per_image = ops.equal(ops.shape(per_image_rows)[1], 1)
    pixels = ops.where(one_per_image, ones, per_image_rows * ones)
    images = ops.where(one_per_image, per_image_rows[:, 0], ones[:, 0])
    return ops.reshape(pixels, ops.shape(labels)), images


@keras.saving.register_keras_serializable(package="keras_unet")
class LinearUpsampling(keras.layers.Layer):
    """Linear up-sampling by a factor of 1 or 2 per spatial axis (trilinear for volumes).

    What ``keras.layers.UpSampling2D(interpolation="bilinear")`` does to images, for any number
    of spatial axes and a factor per axis (an anisotropic level of a 3D U-Net does not up-sample
    z): each doubled axis takes ``0.75 x[i] + 0.25 x[i -+ 1]`` at the output pixels ``2i`` and
    ``2i + 1`` (half-pixel centres, the edge pixel repeated beyond the edge), the rule of
    ``tf.image.resize(method="bilinear")`` for a factor of 2.

    Args:
        factors: the factor (1 or 2) of each spatial axis.

    Example:
        >>> import numpy as np
        >>> layer = LinearUpsampling((1, 2))
        >>> layer(np.array([[[[0.0], [4.0]]]], "float32"))[0, 0, :, 0].numpy().tolist()
        [0.0, 1.0, 3.0, 4.0]
    """

    def __init__(self, factors, **kwargs):
        super().__init__(**kwargs)
        self.factors = tuple(int(f) for f in factors)

    def call(self, inputs):
        x = inputs
        for axis, factor in enumerate(self.factors, start=1):
            if factor == 1:
                continue
            length = ops.shape(x)[axis]
            before = ops.concatenate([_take(x, 0, 1, axis), _take(x, 0, length - 1, axis)], axis)
            after = ops.concatenate([_take(x, 1, length, axis), _take(x, length - 1, length,
                                                                       axis)], axis)
            even, odd = 0.75 * x + 0.25 * before, 0.75 * x + 0.25 * after
            stacked = ops.stack([even, odd], axis=axis + 1)
            shape = ops.shape(x)
            x = ops.reshape(stacked, [shape[i] if i != axis else 2 * shape[i]
                                      for i in range(len(x.shape))])
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *(None if size is None else size * factor for size, factor in
                                  zip(input_shape[1:-1], self.factors)), input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "factors": list(self.factors)}


def _take(x, start, stop, axis):
    """``x[..., start:stop, ...]`` along ``axis``."""
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(start, stop)
    return x[tuple(index)]
