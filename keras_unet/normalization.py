"""Image normalisation: the single definition used by training, inference and the served graph.

Every image is standardised per image to zero mean and unit variance over all its pixels and
channels, into float32. Microscopy comes as uint8, uint16 (often 12-bit) or float with arbitrary
offsets; standardising per image makes all of them look alike to the network, and because the
statistics are those of the whole image (not of a tile), tiled and whole-image prediction agree.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

MIN_STD = 1e-6


def normalize_image(image, mean=None, std=None, *, ndim: int = 2) -> tf.Tensor:
    """Standardises an image (H, W, C) or a batch (B, H, W, C) per image, in float32.

    With ``ndim=3`` the image is a volume (D, H, W, C) (or a batch of them), standardised over
    all its voxels.

    ``(image - mean) / max(std, 1e-6)`` with the mean and standard deviation over height, width
    and channels of each image, unless ``mean`` and ``std`` are given (for example computed in
    chunks over an image too large to hold, see :func:`image_moments`). 8- and 16-bit and float32
    images are standardised in float32, wider dtypes (float64, 32- and 64-bit integers) in float64.

    Args:
        image: array or tensor of any real dtype, channels last.
        mean: optional precomputed mean (scalar or broadcastable).
        std: optional precomputed standard deviation.
        ndim: spatial axes of an image: 2, or 3 for volumes.

    Returns:
        float32 tensor of the same shape.

    Example:
        >>> import numpy as np
        >>> normalize_image(np.array([[[0], [2]]], "uint8")).numpy().ravel().tolist()
        [-1.0, 1.0]
    """
    image = tf.convert_to_tensor(image)
    # float32 holds 8- and 16-bit pixels exactly; wider ones are standardised in float64, so that
    # a large offset does not round away a small spread before the mean is subtracted.
    compute = tf.float32 if image.dtype.size <= 2 or image.dtype == tf.float32 else tf.float64
    image = tf.cast(image, compute)
    axes = list(range(-ndim - 1, 0))
    if mean is None:
        mean = tf.reduce_mean(image, axis=axes, keepdims=True)
    if std is None:
        std = tf.math.reduce_std(image, axis=axes, keepdims=True)
    mean, std = (tf.cast(v, compute) if tf.is_tensor(v) else tf.constant(v, compute)
                 for v in (mean, std))  # tf.cast would take a Python float through float32
    return tf.cast((image - mean) / tf.maximum(std, MIN_STD), tf.float32)


def image_moments(image: np.ndarray, rows_per_chunk: int = 1024) -> tuple[float, float]:
    """Mean and standard deviation of a (possibly memory-mapped) image, read in row chunks.

    Gives the same statistics :func:`normalize_image` computes, without loading the whole image
    as float (for images larger than memory). Numerically stable: each chunk's mean and sum of
    squared deviations are computed in float64 around the chunk mean and merged with Chan et al.'s
    pairwise update, so a large offset does not swamp a small spread (``E[x^2] - E[x]^2`` would).

    Example:
        >>> import numpy as np
        >>> image = np.arange(12, dtype="uint16").reshape(3, 4, 1)
        >>> np.allclose(image_moments(image, rows_per_chunk=2), (image.mean(), image.std()))
        True
    """
    count, mean, squares = 0, 0.0, 0.0  # squares: sum of squared deviations from the mean
    for start in range(0, image.shape[0], rows_per_chunk):
        chunk = np.asarray(image[start:start + rows_per_chunk], dtype=np.float64)
        chunk_mean = float(chunk.mean())
        chunk_squares = float(np.square(chunk - chunk_mean).sum())
        total = count + chunk.size
        delta = chunk_mean - mean
        mean += delta * chunk.size / total
        squares += chunk_squares + delta * delta * count * chunk.size / total
        count = total
    return mean, float(np.sqrt(squares / count))
