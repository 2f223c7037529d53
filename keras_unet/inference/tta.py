"""Test-time augmentation: the average over the 8 flips/rotations of the square's symmetry.

The paper averaged the predictions of rotated and flipped ISBI images. :func:`averaged_image`
augments a whole image (exactly equivariant); :func:`averaged_tiles` augments each tile, for
engines that never hold the whole image (streamed TIFFs, windows of large arrays). A volume
has 16 views: the 8 in its y/x planes, each also flipped along z (rotations that would turn z
into y or x are left out: z is usually sampled differently).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

VIEWS = 8
"""Rotations by 0, 90, 180, 270 degrees, each also flipped left-right."""

VOLUME_VIEWS = 16
"""A volume's: the 8 views of its planes, each also flipped along z."""


def dihedral(array: np.ndarray, k: int, inverse: bool = False, axes=(0, 1)) -> np.ndarray:
    """The ``k``-th of the 8 flips/rotations of ``array`` in the plane ``axes``, or its inverse.

    ``k`` in 0..3 rotates by ``k * 90`` degrees; 4..7 also flip left-right first. With three
    ``axes`` (``z, y, x``), ``k`` in 0..15: the view ``k % 8`` in the y/x plane, flipped along z
    for ``k >= 8``.

    Example:
        >>> image = np.arange(6).reshape(2, 3)
        >>> all((dihedral(dihedral(image, k), k, inverse=True) == image).all() for k in range(8))
        True
        >>> volume = np.arange(24).reshape(2, 3, 4)
        >>> all((dihedral(dihedral(volume, k, axes=(0, 1, 2)), k, True, (0, 1, 2)) == volume).all()
        ...     for k in range(16))
        True
    """
    if len(axes) == 3:
        array = np.flip(array, axes[0]) if k >= 8 else array
        return dihedral(array, k % 8, inverse, axes[1:])
    if inverse:
        array = np.rot90(array, -(k % 4), axes=axes)
        return np.flip(array, axes[1]) if k >= 4 else array
    array = np.flip(array, axes[1]) if k >= 4 else array
    return np.rot90(array, k % 4, axes=axes)


def views(ndim: int) -> int:
    """How many views test-time augmentation averages: 8 for images, 16 for volumes.

    Example:
        >>> views(2), views(3)
        (8, 16)
    """
    return VIEWS if ndim == 2 else VOLUME_VIEWS


def averaged_image(predict: Callable[[np.ndarray], np.ndarray], array: np.ndarray,
                   axes=(0, 1)) -> np.ndarray:
    """The mean of ``predict`` over the 8 views of ``array`` in the plane ``axes`` (16 for the
    three axes of a volume), turned back.

    Example:
        >>> image = np.random.default_rng(0).random((3, 5))
        >>> bool(np.allclose(averaged_image(lambda x: x, image), image))
        True
    """
    total = None
    count = views(len(axes))
    for k in range(count):
        view = predict(np.ascontiguousarray(dihedral(array, k, axes=axes)))
        view = dihedral(view, k, inverse=True, axes=axes)
        total = view if total is None else total + view
    return (total / count).astype(np.float32)


def averaged_tiles(predict_tiles: Callable[[np.ndarray], np.ndarray], ndim: int = 2
                   ) -> Callable[[np.ndarray], np.ndarray]:
    """``predict_tiles`` averaged over the 8 views of each (N, h, w, C) tile (16 of each
    (N, d, h, w, C) tile for ``ndim=3``).

    Example:
        >>> tiles = np.random.default_rng(0).random((2, 4, 6, 1))
        >>> bool(np.allclose(averaged_tiles(lambda t: t)(tiles), tiles))
        True
    """
    axes = tuple(range(1, ndim + 1))
    return lambda tiles: averaged_image(predict_tiles, tiles, axes=axes)
