"""Test-time augmentation: the average over the 8 flips/rotations of the square's symmetry.

The paper averaged the predictions of rotated and flipped ISBI images. :func:`averaged_image`
augments a whole image (exactly equivariant); :func:`averaged_tiles` augments each tile, for
engines that never hold the whole image (streamed TIFFs, windows of large arrays).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

VIEWS = 8
"""Rotations by 0, 90, 180, 270 degrees, each also flipped left-right."""


def dihedral(array: np.ndarray, k: int, inverse: bool = False, axes=(0, 1)) -> np.ndarray:
    """The ``k``-th of the 8 flips/rotations of ``array`` in the plane ``axes``, or its inverse.

    ``k`` in 0..3 rotates by ``k * 90`` degrees; 4..7 also flip left-right first.

    Example:
        >>> image = np.arange(6).reshape(2, 3)
        >>> all((dihedral(dihedral(image, k), k, inverse=True) == image).all() for k in range(8))
        True
    """
    if inverse:
        array = np.rot90(array, -(k % 4), axes=axes)
        return np.flip(array, axes[1]) if k >= 4 else array
    array = np.flip(array, axes[1]) if k >= 4 else array
    return np.rot90(array, k % 4, axes=axes)


def averaged_image(predict: Callable[[np.ndarray], np.ndarray], array: np.ndarray,
                   axes=(0, 1)) -> np.ndarray:
    """The mean of ``predict`` over the 8 views of ``array`` in the plane ``axes``, turned back.

    Example:
        >>> image = np.random.default_rng(0).random((3, 5))
        >>> bool(np.allclose(averaged_image(lambda x: x, image), image))
        True
    """
    total = None
    for k in range(VIEWS):
        view = predict(np.ascontiguousarray(dihedral(array, k, axes=axes)))
        view = dihedral(view, k, inverse=True, axes=axes)
        total = view if total is None else total + view
    return (total / VIEWS).astype(np.float32)


def averaged_tiles(predict_tiles: Callable[[np.ndarray], np.ndarray]
                   ) -> Callable[[np.ndarray], np.ndarray]:
    """``predict_tiles`` averaged over the 8 views of each (N, h, w, C) tile.

    Example:
        >>> tiles = np.random.default_rng(0).random((2, 4, 6, 1))
        >>> bool(np.allclose(averaged_tiles(lambda t: t)(tiles), tiles))
        True
    """
    return lambda tiles: averaged_image(predict_tiles, tiles, axes=(1, 2))
