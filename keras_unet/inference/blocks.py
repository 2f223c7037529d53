"""Output blocks of an image of any size: how it is cut, and which block size suits its chunks.

Block-wise prediction (:mod:`keras_unet.inference.blockwise`), its dask graph and block-wise
cell labels (:mod:`keras_unet.instances.blockwise`) all cut the image the same way; a volume is
cut into boxes the same way, with one more axis.
"""

from __future__ import annotations

import itertools

import numpy as np

from keras_unet.errors import InputError

DEFAULT_BLOCK = 2048
"""Output block side when neither ``block_size`` nor the output's chunks say otherwise."""

DEFAULT_VOLUME_BLOCK = 256
"""A volume's output block side (256^3 voxels of float32 probabilities per class: 64 MiB)."""


Window = tuple[int, ...]
"""An output block: ``(top, left, height, width)`` in image pixels; a volume's ``(front, top,
left, depth, height, width)``."""


def block_windows(shape: tuple[int, ...], block_size) -> list[Window]:
    """The output blocks ``(top, left, height, width)`` that tile an image, row by row.

    Blocks at the right and bottom edges are cut to the image. A volume's ``shape``
    ``(depth, height, width)`` gives boxes ``(front, top, left, depth, height, width)``.

    Raises:
        ValueError: for a block size that is not a positive integer or pair of them.

    Example:
        >>> block_windows((5, 7), 4)
        [(0, 0, 4, 4), (0, 4, 4, 3), (4, 0, 1, 4), (4, 4, 1, 3)]
        >>> block_windows((3, 5, 5), (2, 5, 5))
        [(0, 0, 0, 2, 5, 5), (2, 0, 0, 1, 5, 5)]
    """
    sizes = block_shape(block_size, len(shape))
    starts = itertools.product(*(range(0, length, size) for length, size in zip(shape, sizes)))
    return [(*start, *(min(size, length - first) for first, size, length in
                       zip(start, sizes, shape))) for start in starts]


def block_pair(block_size) -> tuple[int, int]:
    """``block_size`` (an int or a ``(rows, cols)`` pair) as a checked pair of positive ints.

    Example:
        >>> block_pair(256), block_pair((128, 64))
        ((256, 256), (128, 64))
    """
    return block_shape(block_size, 2)


def block_shape(block_size, ndim: int) -> tuple[int, ...]:
    """``block_size`` (an int, or one per axis) as ``ndim`` checked positive ints.

    Example:
        >>> block_shape(64, 3), block_shape((16, 64, 64), 3)
        ((64, 64, 64), (16, 64, 64))
    """
    sizes = (block_size,) * ndim if isinstance(block_size, (int, np.integer)) else block_size
    try:
        sizes = tuple(sizes)
    except TypeError:
        sizes = ()
    if len(sizes) != ndim or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                     and n > 0 for n in sizes):
        kind = "a (rows, cols) pair" if ndim == 2 else "a (planes, rows, cols) triple"
        raise InputError(f"block_size must be a positive integer or {kind} of them, "
                         f"got {block_size!r}.")
    return tuple(int(n) for n in sizes)


def default_block_size(*arrays, ndim: int = 2) -> tuple[int, ...]:
    """Block side pair: the spatial chunks of the first chunked array (zarr or dask), else
    :data:`DEFAULT_BLOCK`, so that every block reads or writes whole chunks. ``ndim=3``: the
    first three chunks, else :data:`DEFAULT_VOLUME_BLOCK`.

    Example:
        >>> import dask.array as da
        >>> default_block_size(None, da.zeros((100, 90), chunks=(64, 32))), default_block_size()
        ((64, 32), (2048, 2048))
    """
    for array in arrays:
        chunks = getattr(array, "chunks", None)
        if chunks and len(chunks) >= ndim:
            first = [c[0] if isinstance(c, tuple) else c for c in chunks[:ndim]]  # dask: per block
            return tuple(int(n) for n in first)
    return (DEFAULT_BLOCK if ndim == 2 else DEFAULT_VOLUME_BLOCK,) * ndim
