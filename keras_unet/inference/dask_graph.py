"""Block-wise prediction as a dask graph, for a ``dask.distributed`` cluster or one machine.

One task per output block runs :func:`keras_unet.inference.blockwise.predict_block` (the tiling
engine of :func:`keras_unet.predict_tiled`) on a worker, which loads the model once and keeps it
(:func:`cached_network`). The tasks read their input windows themselves from an array the workers
can open (zarr, a memory map, or NumPy shipped once), or, for a dask array, from a slice of it that
holds the block and its context. The graph is a ``dask.array`` of the probabilities, so
``dask.array.store`` writes each block into its own chunks of a zarr array on the worker that
computed it; zarr replaces each chunk file atomically, and dask re-runs the blocks of a worker that
dies, so no chunk is ever half written.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import dask
import dask.array as da
import numpy as np

from keras_unet.errors import InputError, InputNotFoundError, SchedulerUnreachableError
from keras_unet.geometry import PREDICTION_BATCH

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a scheduler address to answer before giving up."""


@functools.lru_cache(maxsize=4)
def cached_network(path: str, modified: int):
    """What the tiling engine runs of the model at ``path`` (a ``.keras`` or ``.onnx`` file),
    opened once per process by :func:`keras_unet.inference.load_network` (a dask worker keeps it).

    ``modified`` (the file's ``st_mtime_ns``) is part of the key, so a replaced file is
    loaded again.

    Example:
        >>> import tempfile
        >>> from keras_unet import build_unet
        >>> path = os.path.join(tempfile.mkdtemp(), "unet.keras")
        >>> build_unet((None, None, 1), 2, filters=4, depth=2).save(path)
        >>> stamp = os.stat(path).st_mtime_ns
        >>> cached_network(path, stamp) is cached_network(path, stamp)
        True
    """
    from keras_unet.inference.loading import load_network

    network = load_network(path)
    if network.tiles is None:
        raise InputError(f"--model {path!r} is a SavedModel; block-wise prediction needs the "
                         ".keras or .onnx model, whose tiles the engine runs.")
    return network.tiles


def load_cached(path: str):
    """:func:`cached_network` for the file as it is now.

    Raises:
        FileNotFoundError: if the model file does not exist (on this machine or worker).

    Example:
        >>> load_cached("no-such.keras")
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputNotFoundError: model 'no-such.keras' does not exist here (pid ...).
    """
    try:
        stamp = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        raise InputNotFoundError(f"model {path!r} does not exist here (pid {os.getpid()}).") \
            from None
    return cached_network(path, stamp)


class BoxArray:
    """A box of an image at its place in the whole image: slicing takes global indices.

    What a task holds of a dask image: the block and its context; reads outside the box fail.
    ``origin`` is the box's first pixel (a volume's first voxel) in the whole image.

    Example:
        >>> box = BoxArray(np.arange(6).reshape(2, 3), (4, 1), shape=(10, 10))
        >>> box[5:6, 2:4].tolist(), box.shape
        ([[4, 5]], (10, 10))
    """

    def __init__(self, data: np.ndarray, origin: tuple[int, ...], shape: tuple[int, ...]):
        self.data, self.origin = data, tuple(origin)
        self.shape, self.dtype = tuple(shape), data.dtype

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        local = []
        for index, (part, first) in enumerate(zip(key, self.origin)):
            start, stop = part.start - first, part.stop - first
            if start < 0 or stop > self.data.shape[index]:
                spans = ", ".join(f"{o}:{o + n}" for o, n in zip(self.origin, self.data.shape))
                read = ", ".join(f"{p.start}:{p.stop}" for p in key)
                raise RuntimeError(f"the tiling engine read {read}, outside the box of context "
                                   f"{spans}.")
            local.append(slice(start, stop))
        return self.data[tuple(local)]


def _predict_task(model_path: str, source, window, mean: float, std: float, tile_size,
                  batch_size: int, tta: bool) -> np.ndarray:
    from keras_unet.inference.blockwise import predict_block

    model = load_cached(model_path)
    return predict_block(model, source, window, mean, std, tile_size=tile_size,
                         batch_size=batch_size, tta=tta)


def _predict_box_task(model_path: str, box: np.ndarray, origin: tuple[int, ...], shape, window,
                      mean: float, std: float, tile_size, batch_size: int,
                      tta: bool) -> np.ndarray:
    source = BoxArray(np.asarray(box), origin, shape)
    return _predict_task(model_path, source, window, mean, std, tile_size, batch_size, tta)


def predict_dask(model_path: str | os.PathLike, array, *, block_size=None, tile_size=None,
                 batch_size: int = PREDICTION_BATCH, tta: bool = False,
                 name: str = "array") -> da.Array:
    """The block-wise prediction of an array-like image as a lazy ``dask.array`` (H, W, K)
    (a 3D U-Net's of a volume: (D, H, W, K), one task per box).

    Computing it (on a ``dask.distributed`` client when one is active, else dask's threads) gives
    exactly :func:`keras_unet.inference.blockwise.predict_array`'s result: the same blocks through
    the same engine, with the image's statistics from the same pass (computed here, before the graph
    is built). Each task loads the model from ``model_path`` once per worker. Store it
    (``dask.array.store``) into chunks that hold whole blocks, so that no two tasks write to the
    same chunk.

    Args:
        model_path: a ``.keras`` file every worker can read.
        array: (H, W) or (H, W, C) zarr array, memory map, NumPy or dask array.
        block_size: output block side (int or pair); default: the array's spatial chunks,
            else :data:`keras_unet.inference.blocks.DEFAULT_BLOCK`. One task per block.
        tile_size, batch_size, tta: as for :func:`keras_unet.predict_tiled`.
        name: what to call the array in error messages.

    Raises:
        FileNotFoundError: if ``model_path`` does not exist.
        ValueError: for an array the model cannot take (rank, channels, dtype, NaN).

    Example:
        >>> import tempfile
        >>> from keras_unet import build_unet
        >>> from keras_unet.inference.blockwise import predict_array
        >>> path = os.path.join(tempfile.mkdtemp(), "unet.keras")
        >>> build_unet((None, None, 1), 2, filters=4, depth=2).save(path)
        >>> image = np.random.default_rng(0).integers(0, 255, (50, 70), dtype="uint8")
        >>> graph = predict_dask(path, image, block_size=32)
        >>> graph.chunks[:2]
        ((32, 18), (32, 32, 6))
        >>> bool((graph.compute(scheduler="sync")
        ...       == predict_array(load_cached(path), image, block_size=32)).all())
        True
    """
    model_path = str(Path(model_path).resolve())
    if not os.path.isfile(model_path):
        raise InputNotFoundError(f"model {model_path!r} does not exist.")
    from keras_unet.inference.blocks import block_shape, block_windows, default_block_size
    from keras_unet.inference.blockwise import array_moments, check_array
    from keras_unet.inference.engine import read_span
    from keras_unet.inference.network import model_geometry

    geom = model_geometry(load_cached(model_path))
    ndim = geom.ndim
    shape = check_array(array, geom.channels, name, ndim)
    blocks = block_shape(default_block_size(array, ndim=ndim) if block_size is None
                         else block_size, ndim)
    try:
        mean, std = array_moments(array)
    except ValueError as error:
        raise InputError(f"{name}: {error}") from None
    lazy = isinstance(array, da.Array)
    source = None if lazy else dask.delayed(array, pure=True, traverse=False)
    grid = {}
    for window in block_windows(shape, blocks):
        if lazy:
            spans = read_span(geom, window, shape, tile_size, batch_size)
            box = array[tuple(slice(lo, hi) for lo, hi in spans)]
            task = dask.delayed(_predict_box_task, pure=True)(
                model_path, box, tuple(lo for lo, _ in spans), tuple(array.shape), window, mean,
                std, tile_size, batch_size, tta)
        else:
            task = dask.delayed(_predict_task, pure=True)(
                model_path, source, window, mean, std, tile_size, batch_size, tta)
        grid[window[:ndim]] = da.from_delayed(task, (*window[ndim:], geom.num_classes),
                                              dtype=np.float32)
    return da.block(_nested(grid, blocks, shape))


def _nested(grid: dict, blocks: tuple[int, ...], shape: tuple[int, ...], prefix=()) -> list:
    """The blocks of ``grid`` (keyed by their first pixel) as nested lists for ``da.block``
    (one more level for the classes, which are not cut)."""
    axis = len(prefix)
    starts = range(0, shape[axis], blocks[axis])
    if axis == len(shape) - 1:
        return [[grid[(*prefix, start)]] for start in starts]
    return [_nested(grid, blocks, shape, (*prefix, start)) for start in starts]


def connect(address: str, timeout: float = CONNECT_TIMEOUT):
    """A ``dask.distributed`` client of the scheduler at ``address`` (``tcp://host:8786``).

    Raises:
        SchedulerUnreachableError: if nothing answers at ``address`` within ``timeout``
            seconds, naming it.
        ValueError: if ``address`` is not an address at all (``--scheduler notanaddress``).

    Example:
        >>> connect("tcp://127.0.0.1:9", timeout=1)
        Traceback (most recent call last):
        ...
        keras_unet.errors.SchedulerUnreachableError: --scheduler 'tcp://127.0.0.1:9' ...
    """
    from distributed import Client
    from distributed.comm.addressing import get_address_host_port

    if address.partition("://")[0] in ("tcp", "tls", address):  # a host:port address: parse
        try:  # it first, as a Client that fails to would stay dask's scheduler once collected
            get_address_host_port(address)
        except ValueError as error:
            raise InputError(f"--scheduler {address!r} is not a scheduler address ({error}); "
                             "give one like tcp://host:8786.") from None
    try:
        return Client(address, timeout=timeout)
    except Exception as error:  # refused, timed out, or something else answered
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise SchedulerUnreachableError(f"--scheduler {address!r} did not answer as a dask "
                                        f"scheduler within {timeout:g} s ({reason}).") from None
