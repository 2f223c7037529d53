"""The one mirror rule: positions outside an axis folded back into it (``d c b | a b c d | c b``).

Mirroring about the edge pixels without repeating them, as ``np.pad(mode="reflect")`` does, for
any distance and any axis length (an axis of one pixel repeats it). Overlap-tile prediction
reads integer indices with it; augmentation interpolates float coordinates folded by it
(the mirrored image is symmetric about each edge pixel, so interpolating it at ``x`` equals
interpolating the image at the folded ``x``).
"""

from __future__ import annotations

import tensorflow as tf


def mirror(coordinate, size) -> tf.Tensor:
    """Folds integer or float ``coordinate`` (any shape) into ``[0, size - 1]`` by mirroring.

    ``size`` is a scalar or broadcasts against ``coordinate``; the result has its dtype.

    Example:
        >>> mirror(tf.range(-2, 6), 4).numpy().tolist()
        [2, 1, 0, 1, 2, 3, 2, 1]
        >>> mirror(tf.constant([-0.5, 3.5]), 3).numpy().tolist()
        [0.5, 0.5]
    """
    coordinate = tf.convert_to_tensor(coordinate)
    last = tf.cast(size, coordinate.dtype) - 1
    period = tf.maximum(2 * last, 1)
    folded = tf.math.floormod(coordinate, period)
    return tf.clip_by_value(last - tf.abs(last - folded), 0, last)  # clip: float rounding
