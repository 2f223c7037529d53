"""Image normalisation: the single definition used by training, inference and the served graph.

Every image is standardised per image to zero mean and unit variance over all its pixels and
channels, in float32. Microscopy comes as uint8, uint16 (often 12-bit) or float with arbitrary
offsets; standardising per image makes all of them look alike to the network, and because the
statistics are those of the whole image (not of a tile), tiled and whole-image prediction agree.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

MIN_STD = 1e-6


def normalize_image(image, mean=None, std=None) -> tf.Tensor:
    """Standardises an image (H, W, C) or a batch (B, H, W, C) per image, in float32.

    ``(image - mean) / max(std, 1e-6)`` with the mean and standard deviation over height, width
    and channels of each image, unless ``mean`` and ``std`` are given (for example computed in
    chunks over an image too large to hold, see :func:`image_moments`).

    Args:
        image: array or tensor of any real dtype, channels last.
        mean: optional precomputed mean (scalar or broadcastable).
        std: optional precomputed standard deviation.

    Returns:
        float32 tensor of the same shape.

    Example:
        >>> import numpy as np
        >>> normalize_image(np.array([[[0], [2]]], "uint8")).numpy().ravel().tolist()
        [-1.0, 1.0]
    """
    image = tf.cast(tf.convert_to_tensor(image), tf.float32)
    axes = [-3, -2, -1]
    if mean is None:
        mean = tf.reduce_mean(image, axis=axes, keepdims=True)
    if std is None:
        std = tf.math.reduce_std(image, axis=axes, keepdims=True)
    mean = tf.cast(mean, tf.float32)
    std = tf.cast(std, tf.float32)
    return (image - mean) / tf.maximum(std, MIN_STD)


def image_moments(image: np.ndarray, rows_per_chunk: int = 1024) -> tuple[float, float]:
    """Mean and standard deviation of a (possibly memory-mapped) image, read in row chunks.

    Gives the same statistics :func:`normalize_image` computes, without loading the whole image
    as float (for images larger than memory).

    Example:
        >>> import numpy as np
        >>> image = np.arange(12, dtype="uint16").reshape(3, 4, 1)
        >>> np.allclose(image_moments(image, rows_per_chunk=2), (image.mean(), image.std()))
        True
    """
    total, total_sq, count = 0.0, 0.0, 0
    for start in range(0, image.shape[0], rows_per_chunk):
        chunk = np.asarray(image[start:start + rows_per_chunk], dtype=np.float64)
        total += chunk.sum()
        total_sq += np.square(chunk).sum()
        count += chunk.size
    mean = total / count
    return float(mean), float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))
