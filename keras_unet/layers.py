"""Layers the U-Net needs that Keras does not ship."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_unet")
class CropToMatch(keras.layers.Layer):
    """Centre-crops a feature map to the spatial size of a reference tensor.

    The skip connections of the unpadded U-Net carry larger maps than the expanding path they join
    ("the cropping is necessary due to the loss of border pixels in every convolution",
    Ronneberger et al. 2015). Unlike ``keras.layers.Cropping2D`` the amount is read from the
    reference at run time, so the model accepts inputs whose height and width are ``None``.

    Call arguments:
        inputs: a list ``[tensor, reference]`` of channels-last 4D tensors; ``tensor`` must be at
            least as large as ``reference`` in height and width.

    Returns:
        ``tensor`` centre-cropped to the height and width of ``reference``.

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
        return (tensor_shape[0], reference_shape[1], reference_shape[2], tensor_shape[3])


def crop_to_match(tensor, reference):
    """Centre-crops axes 1 and 2 of ``tensor`` to the sizes of those axes in ``reference``.

    Works for any rank >= 3 (labels ``(B, H, W)``, maps ``(B, H, W, C)``) and for sizes only known
    at run time. Used by the losses and metrics so that labels and weight maps the size of a
    valid-padding model's input are compared with its smaller output.

    Example:
        >>> import numpy as np
        >>> labels = np.arange(16).reshape(1, 4, 4)
        >>> crop_to_match(labels, np.zeros((1, 2, 2, 2))).numpy().tolist()
        [[[5, 6], [9, 10]]]
    """
    tensor = ops.convert_to_tensor(tensor)
    shape = ops.shape(tensor)
    target = ops.shape(reference)
    top = (shape[1] - target[1]) // 2
    left = (shape[2] - target[2]) // 2
    rank = len(tensor.shape)
    start = [0, top, left] + [0] * (rank - 3)
    size = [shape[0], target[1], target[2]] + [shape[i] for i in range(3, rank)]
    return ops.slice(tensor, start, size)
