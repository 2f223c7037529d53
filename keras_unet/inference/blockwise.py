"""Block-wise prediction of 2D arrays of any size: NumPy, memory maps, zarr, dask.

An unpadded U-Net predicts a block exactly from the block plus the network's border of context,
so an image too large for memory is predicted one output block at a time: each block's input
window is read from the array with that context (mirrored only at the image's edges) and
passed through :func:`keras_unet.inference.engine.predict_window`, the engine of
:func:`keras_unet.predict_tiled`, so the blocks together equal the whole-image prediction.
Before that, one streaming pass over the array computes the image's own mean and standard
deviation (:func:`keras_unet.normalization.image_moments`), the statistics the whole-image
path standardises with. Memory is that of one block, whatever the image's area. Volumes
(``(D, H, W[, C])`` array-likes and a 3D U-Net) are cut into boxes of voxels the same way, so a
volume larger than memory is predicted one box at a time, equal to the whole.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from keras_unet.class_layout import predicted_classes
from keras_unet.errors import InputError
from keras_unet.geometry import PREDICTION_BATCH
from keras_unet.inference.blocks import Window, block_shape, block_windows, default_block_size
from keras_unet.inference.network import model_geometry
from keras_unet.normalization import image_moments, normalize_image

MOMENT_PIXELS = 2**24
"""Pixels per row chunk of the statistics pass (128 MiB as float64)."""


def check_array(array, channels: int, name: str = "array", ndim: int = 2) -> tuple[int, ...]:
    """Checks an array-like image (H, W) or (H, W, C) without reading its pixels; returns (H, W)
    (``ndim=3``: a volume (D, H, W) or (D, H, W, C); returns (D, H, W)).

    Raises:
        ValueError: for an array without ``shape`` and ``dtype``, of another rank, with a
            channel count the model does not take, empty, or of a non-numeric dtype.

    Example:
        >>> check_array(np.zeros((6, 9), "uint8"), 1)
        (6, 9)
        >>> check_array(np.zeros((6, 9, 2)), 1, "big.zarr")
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: big.zarr has shape (6, 9, 2), but the model takes ...
    """
    shape, dtype = getattr(array, "shape", None), getattr(array, "dtype", None)
    if shape is None or dtype is None:
        raise InputError(f"{name} is a {type(array).__name__}; expected an array with shape, "
                         "dtype and slicing (NumPy, memory map, zarr, dask).")
    shape = tuple(int(n) for n in shape)
    fits = (len(shape) == ndim and channels == 1
            or len(shape) == ndim + 1 and shape[-1] == channels)
    if not fits or 0 in shape:
        if ndim == 3:
            raise InputError(f"{name} has shape {shape}, but the model is 3D: it takes (depth, "
                             f"height, width, {channels})" + (" or (depth, height, width)"
                                                             if channels == 1 else "")
                             + " volumes.")
        raise InputError(f"{name} has shape {shape}, but the model takes (height, width, "
                         f"{channels})" + (" or (height, width)" if channels == 1 else "")
                         + " images.")
    dtype = np.dtype(dtype)
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
            or dtype.kind == "b"):
        raise InputError(f"{name} has dtype {dtype}; expected integer or float pixels.")
    return shape[:ndim]


def array_moments(array) -> tuple[float, float]:
    """Mean and standard deviation of an array-like image, in one pass of row chunks.

    The statistics :func:`keras_unet.normalization.normalize_image` standardises a whole image
    with (computed by :func:`keras_unet.normalization.image_moments`), with row chunks of about
    :data:`MOMENT_PIXELS` pixels aligned to the array's own chunks, so memory stays bounded.

    Raises:
        ValueError: if the image holds NaN or infinite pixels.

    Example:
        >>> image = np.arange(12, dtype="uint16").reshape(3, 4)
        >>> np.allclose(array_moments(image), (image.mean(), image.std()))
        True
    """
    row_pixels = math.prod(array.shape[1:])
    rows = max(1, MOMENT_PIXELS // row_pixels)
    chunk_rows = default_block_size(array)[0] if getattr(array, "chunks", None) else None
    if chunk_rows and rows > chunk_rows:
        rows -= rows % chunk_rows
    mean, std = image_moments(array, rows_per_chunk=rows)
    if not np.isfinite([mean, std]).all():
        raise InputError("the image contains NaN or infinite pixels.")
    return mean, std


def read_normalized(array, rows: np.ndarray, cols: np.ndarray, mean: float,
                    std: float) -> np.ndarray:
    """Standardised float32 pixels ``(len(rows), len(cols), C)`` at global image indices.

    Reads only the bounding box of the indices with plain slicing (which zarr, dask and memory
    maps do lazily), then picks the indices from it: the reader the tiling engine is given.

    Example:
        >>> image = np.arange(20, dtype="uint8").reshape(4, 5)
        >>> read_normalized(image, np.array([1, 0, 1]), np.array([3, 4]), 0.0, 1.0)[..., 0]
        array([[8., 9.],
               [3., 4.],
               [8., 9.]], dtype=float32)
    """
    return read_box(array, (rows, cols), mean, std)


def read_box(array, indices, mean: float, std: float) -> np.ndarray:
    """:func:`read_normalized` for any number of axes: ``indices`` one array per spatial axis
    (a volume's planes, rows and columns), ``(len(i0), len(i1)[, len(i2)], C)`` float32 out.

    Example:
        >>> volume = np.arange(24, dtype="uint8").reshape(2, 3, 4)
        >>> read_box(volume, (np.array([1]), np.array([0, 0]), np.array([3])), 0.0, 1.0).ravel()
        array([15., 15.], dtype=float32)
    """
    indices = [np.asarray(index) for index in indices]
    lows = [int(index.min()) for index in indices]
    box = np.asarray(array[tuple(slice(low, int(index.max()) + 1)
                                 for low, index in zip(lows, indices))])
    box = box[np.ix_(*(index - low for index, low in zip(indices, lows)))]
    if box.ndim == len(indices):
        box = box[..., None]
    return normalize_image(box, mean, std, ndim=len(indices)).numpy()


def predict_block(model: keras.Model, array, window: Window, mean: float, std: float, *,
                  tile_size=None, batch_size: int = PREDICTION_BATCH,
                  tta: bool = False) -> np.ndarray:
    """Probabilities ``(height, width, K)`` of one output block of an array-like image.

    The block's window of :func:`keras_unet.predict_tiled` of the whole image, normalised with
    the whole image's ``mean`` and ``std`` (:func:`array_moments`); what every block-wise path,
    in one process or on dask workers, computes per block.

    Example:
        >>> from keras_unet import build_unet
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> image = np.random.default_rng(0).integers(0, 255, (40, 50), dtype="uint8")
        >>> predict_block(model, image, (8, 16, 20, 30), *array_moments(image)).shape
        (20, 30, 2)
    """
    from keras_unet.inference.engine import predict_window

    ndim = len(window) // 2
    shape = tuple(int(n) for n in array.shape[:ndim])
    return predict_window(model, lambda *index: read_box(array, index, mean, std),
                          shape, window, tile_size=tile_size, batch_size=batch_size, tta=tta)


def predict_array(model: keras.Model, array, *, output=None, classes=None, block_size=None,
                  tile_size=None, batch_size: int = PREDICTION_BATCH, tta: bool = False,
                  name: str = "array"):
    """Class probabilities of an array-like image of any size, block by block.

    Equals :func:`keras_unet.predict_tiled` of the whole image (for valid-padding models, to
    float precision) while holding only one block: the statistics come from one streaming pass
    (:func:`array_moments`), then each output block is read with its context and predicted by
    the tiling engine (:func:`predict_block`) and written to ``output`` and ``classes``.

    A 3D U-Net predicts a volume array-like (D, H, W[, C]) in boxes of voxels the same way.

    Args:
        model: a U-Net from :func:`keras_unet.build_unet`.
        array: (H, W) or (H, W, C) array-like with ``shape``, ``dtype`` and slicing: NumPy,
            a memory-mapped TIFF, a zarr or a dask array.
        output: (H, W, K) float32 array-like to write the probabilities into (a zarr array,
            a memory map); ``None`` returns them as a new NumPy array, unless ``classes`` is
            given, in which case the probabilities are not kept.
        classes: optional (H, W) array-like to write the argmax class of each pixel into.
        block_size: output block side (int or pair); default: the spatial chunks of
            ``output`` (or of ``classes``), else
            :data:`~keras_unet.inference.blocks.DEFAULT_BLOCK`.
        tile_size, batch_size, tta: as for :func:`keras_unet.predict_tiled`.
        name: what to call the array in error messages (e.g. its path).

    Returns:
        ``output`` (or the new NumPy array), or ``None`` when only ``classes`` was asked for.

    Raises:
        ValueError: for an array of the wrong rank, channels or dtype, NaN pixels, an output
            of another shape, or a bad block or tile size.

    Example:
        >>> from keras_unet import build_unet
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> image = np.random.default_rng(0).integers(0, 255, (50, 70), dtype="uint8")
        >>> blocks = predict_array(model, image, block_size=32)
        >>> from keras_unet import predict_tiled
        >>> bool(np.abs(blocks - predict_tiled(model, image)).max() < 1e-4)
        True
    """
    geom = model_geometry(model)
    ndim = geom.ndim
    size = check_array(array, geom.channels, name, ndim)
    sinks = {"output": (output, (*size, geom.num_classes)),
             "classes": (classes, size)}
    for label, (sink, shape) in sinks.items():
        if sink is not None and tuple(sink.shape) != shape:
            raise InputError(f"{label} has shape {tuple(sink.shape)}; {name} needs {shape}.")
    blocks = block_shape(default_block_size(output, classes, ndim=ndim) if block_size is None
                         else block_size, ndim)
    if output is None and classes is None:
        output = np.empty((*size, geom.num_classes), np.float32)
    try:
        mean, std = array_moments(array)
    except ValueError as error:
        raise InputError(f"{name}: {error}") from None
    for window in block_windows(size, blocks):
        probabilities = predict_block(model, array, window, mean, std,
                                      tile_size=tile_size, batch_size=batch_size, tta=tta)
        where = tuple(slice(start, start + extent)
                      for start, extent in zip(window[:ndim], window[ndim:]))
        if output is not None:
            output[where] = probabilities
        if classes is not None:
            classes[where] = predicted_classes(probabilities)
    return output
