"""Output blocks of an image of any size: how it is cut, and which block size suits its chunks.

Block-wise prediction (:mod:`keras_unet.inference.blockwise`), its dask graph and block-wise
cell labels (:mod:`keras_unet.instances.blockwise`) all cut the image the same way.
"""

from __future__ import annotations

import numpy as np

from keras_unet.errors import InputError

DEFAULT_BLOCK = 2048
"""Output block side when neither ``block_size`` nor the output's chunks say otherwise."""


Window = tuple[int, int, int, int]
"""An output block: ``(top, left, height, width)`` in image pixels."""


def block_windows(shape: tuple[int, int], block_size: int | tuple[int, int]) -> list[Window]:
    """The output blocks ``(top, left, height, width)`` that tile an image, row by row.

    Blocks at the right and bottom edges are cut to the image.

    Raises:
        ValueError: for a block size that is not a positive integer or pair of them.

    Example:
        >>> block_windows((5, 7), 4)
        [(0, 0, 4, 4), (0, 4, 4, 3), (4, 0, 1, 4), (4, 4, 1, 3)]
    """
    block_rows, block_cols = block_pair(block_size)
    height, width = shape
    return [(top, left, min(block_rows, height - top), min(block_cols, width - left))
            for top in range(0, height, block_rows) for left in range(0, width, block_cols)]


def block_pair(block_size) -> tuple[int, int]:
    """``block_size`` (an int or a ``(rows, cols)`` pair) as a checked pair of positive ints.

    Example:
        >>> block_pair(256), block_pair((128, 64))
        ((256, 256), (128, 64))
    """
    pair = (block_size, block_size) if isinstance(block_size, (int, np.integer)) else block_size
    try:
        pair = tuple(pair)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                 and n > 0 for n in pair):
        raise InputError(f"block_size must be a positive integer or a (rows, cols) pair of them, "
                         f"got {block_size!r}.")
    return int(pair[0]), int(pair[1])


def default_block_size(*arrays) -> tuple[int, int]:
    """Block side pair: the spatial chunks of the first chunked array (zarr or dask), else
    :data:`DEFAULT_BLOCK`, so that every block reads or writes whole chunks.

    Example:
        >>> import dask.array as da
        >>> default_block_size(None, da.zeros((100, 90), chunks=(64, 32))), default_block_size()
        ((64, 32), (2048, 2048))
    """
    for array in arrays:
        chunks = getattr(array, "chunks", None)
        if chunks and len(chunks) >= 2:
            first = [c[0] if isinstance(c, tuple) else c for c in chunks[:2]]  # dask: per block
            return int(first[0]), int(first[1])
    return DEFAULT_BLOCK, DEFAULT_BLOCK
