"""The band engine: overlap-tile prediction of any window of an image, one band of tiles at a time.

Pixels come from a reader at global image indices, mirrored at the image's own edges, so a
window of a large image (a TIFF, a zarr block) is predicted exactly as the same window of the
whole image: valid-padding tiles are placed on the pooling grid of the whole image. Only one
band of tile rows is held at a time; finished output rows are yielded as they come. A volume
is predicted the same way with one more axis: its bands are slabs of tile planes along z, each
tiled over y and x.
Planning is :mod:`keras_unet.inference.plan`, stitching :mod:`keras_unet.inference.stitching`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from keras_unet.errors import InputError
from keras_unet.geometry import PREDICTION_BATCH
from keras_unet.inference.mirror import mirror
from keras_unet.inference.network import ModelGeometry, TileNetwork, tile_predictor
from keras_unet.inference.plan import AxisPlan, AxisTiling, concrete_plan, plan_axis, tilings
from keras_unet.inference.stitching import overlap_add, stitch_grid, weight_sum, weighted_outputs
from keras_unet.inference.tta import averaged_tiles

Reader = Callable[..., np.ndarray]
"""``read(rows, cols) -> (len(rows), len(cols), C)`` float32 normalised pixels; a volume's
``read(planes, rows, cols) -> (len(planes), len(rows), len(cols), C)``."""


def iter_window_rows(network: keras.Model | TileNetwork, read: Reader,
                     image_shape: tuple[int, ...], window: tuple[int, ...], *,
                     tile_size=None, batch_size: int = PREDICTION_BATCH,
                     tta: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """Yields ``(first_row, probabilities)`` row blocks of a window, top to bottom.

    Arguments as for :func:`predict_window`; the blocks are float32 ``(rows, width, K)`` (a
    volume's: ``(planes, height, width, K)``, first to last plane).

    Example:
        >>> from keras_unet import build_unet
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> image = np.zeros((30, 40, 1), "float32")
        >>> blocks = iter_window_rows(model, lambda r, c: image[r][:, c], (30, 40), (0, 0, 30, 40),
        ...                           tile_size=48)
        >>> [(start, block.shape) for start, block in blocks]
        [(0, (8, 40, 2)), (8, (8, 40, 2)), (16, (8, 40, 2)), (24, (6, 40, 2))]
    """
    geom, predict_tiles = tile_predictor(network)
    sizes = _check_window(image_shape, window, geom.ndim)
    *axis_tilings, batch = tilings(geom, tile_size, batch_size)
    if tta:
        plane = axis_tilings[-2:]
        if plane[0].tile != plane[1].tile and None not in geom.input_size:
            raise InputError(f"tta needs square tiles for a model of fixed input size "
                             f"{geom.input_size}.")
        predict_tiles = averaged_tiles(predict_tiles, geom.ndim)
    ndim = geom.ndim
    axes = [_window_axis(tiling, start, length, size) for tiling, start, length, size in
            zip(axis_tilings, window[:ndim], window[ndim:], image_shape)]
    (rows, skip_rows, all_rows), inner = axes[0], axes[1:]
    inner_plans = [plan for plan, _, _ in inner]
    firsts = [plan.origin + skip for plan, skip, _ in inner]
    crop = tuple(slice(first, first + size) for first, size in zip(firsts, sizes[1:]))
    inner_sum = None  # the weight sums of the inner axes, (*sizes[1:], 1)
    for axis, (plan, first, size) in enumerate(zip(inner_plans, firsts, sizes[1:])):
        shape = [1] * ndim
        shape[axis] = size
        factor = weight_sum(plan).numpy()[first:first + size].reshape(shape)
        inner_sum = factor if inner_sum is None else inner_sum * factor
    row_sum = weight_sum(rows).numpy()
    first_row, stop_row = rows.origin + skip_rows, rows.origin + skip_rows + sizes[0]
    previous = np.zeros((rows.keep, *(plan.accumulated for plan in inner_plans),
                         geom.num_classes), np.float32)
    expand = (slice(None),) + (None,) * ndim
    for ky in range(rows.count):
        start = ky * rows.step
        row_index = all_rows[start:start + rows.tile]
        band = _band_outputs(predict_tiles, read(row_index, *(index for _, _, index in inner)),
                             rows, inner_plans, batch)
        # The rows this band finishes: its head plus the tail of the band before it.
        pair = overlap_add(np.stack([previous, band]).reshape(1, 2, rows.keep, -1), rows.step)
        pair = pair.numpy().reshape(rows.step + rows.keep, *band.shape[1:])[rows.step:]
        done = rows.keep if ky == rows.count - 1 else rows.step  # rows no later tile adds to
        lo, hi = max(start, first_row), min(start + done, stop_row)
        if hi > lo:
            block = pair[(slice(lo - start, hi - start), *crop)]
            yield lo - first_row, block / (row_sum[lo:hi][expand] * inner_sum)
        previous = band


def _window_axis(tiling: AxisTiling, start: int, length: int, size: int
                 ) -> tuple[AxisPlan, int, np.ndarray]:
    """The plan of one axis of a window, the pixels it skips to start on the pooling grid of
    the whole image, and the image indices (mirrored at the image's edges) its tiles read."""
    skip = start % tiling.grid
    plan = concrete_plan(plan_axis(length + skip, tiling))
    index = mirror(np.arange(plan.padded) - plan.before + start - skip, size).numpy()
    return plan, skip, index


def read_span(geom: ModelGeometry, window: tuple[int, ...], image_shape: tuple[int, ...],
              tile_size=None, batch_size: int = PREDICTION_BATCH) -> tuple[tuple[int, int], ...]:
    """The rows and columns ``[start, stop)`` of the image that predicting ``window`` reads
    (a volume's planes, rows and columns).

    What a task that holds only part of an image needs of it (:mod:`keras_unet.inference.
    dask_graph`): the indices :func:`iter_window_rows` reads, from the same plan.

    Example:
        >>> read_span(ModelGeometry(2, "valid", 1, 2, (None, None), 4), (40, 0, 30, 30),
        ...           (100, 100))
        ((20, 92), (0, 52))
    """
    _check_window(image_shape, window, geom.ndim)
    spans = []
    ndim = geom.ndim
    for tiling, start, length, size in zip(tilings(geom, tile_size, batch_size)[:ndim],
                                           window[:ndim], window[ndim:], image_shape):
        index = _window_axis(tiling, start, length, size)[2]
        spans.append((int(index.min()), int(index.max()) + 1))
    return tuple(spans)


def _band_outputs(predict_tiles, band: np.ndarray, rows: AxisPlan, inner: list[AxisPlan],
                  batch: int) -> np.ndarray:
    """Weighted, stitched outputs (keep_h, Lw, K) of one band of tiles (a volume's slab:
    (keep_d, Lh, Lw, K))."""
    corners = itertools.product(*(range(plan.count) for plan in inner))
    tiles = [band[(slice(None), *(slice(k * plan.step, k * plan.step + plan.tile)
                                  for k, plan in zip(corner, inner)))] for corner in corners]
    outputs = np.concatenate([predict_tiles(np.stack(tiles[first:first + batch]))
                              for first in range(0, len(tiles), batch)])
    weighted = weighted_outputs(outputs, rows, *inner)
    if len(inner) > 1:
        weighted = tf.reshape(weighted, [*(plan.count for plan in inner), *weighted.shape[1:]])
    return stitch_grid(weighted, inner).numpy()


def predict_window(network: keras.Model | TileNetwork, read: Reader,
                   image_shape: tuple[int, ...], window: tuple[int, ...], *,
                   tile_size=None, batch_size: int = PREDICTION_BATCH,
                   tta: bool = False) -> np.ndarray:
    """Class probabilities of the output window ``(top, left, height, width)`` of an image.

    ``read(rows, cols)`` returns the normalised float32 pixels ``(len(rows), len(cols), C)`` at
    *global* image indices (already mirrored at the image's edges, never at the window's).
    For a valid-padding model the result equals the same window of
    :func:`keras_unet.predict_tiled` on the whole image, whatever the window and tile size.
    A 3D model predicts a volume's window ``(front, top, left, depth, height, width)`` from
    ``read(planes, rows, cols)``.

    Args:
        network: a U-Net from :func:`keras_unet.build_unet`, or any object with a
            ``geometry: ModelGeometry`` and ``predict_tiles(tiles) -> probabilities``.
        read: the pixel reader.
        image_shape: ``(H, W)`` of the whole image (``(D, H, W)`` of a volume).
        window: ``(top, left, height, width)`` inside it (``(front, top, left, depth, height,
            width)``).
        tile_size, batch_size: see :func:`keras_unet.inference.plan.tilings`.
        tta: average each tile over the 8 flips/rotations (16 views of a volume).

    Returns:
        float32 array ``(height, width, K)`` (``(depth, height, width, K)``).

    Raises:
        ValueError: for a window outside the image or a tile the model cannot take.

    Example:
        >>> from keras_unet import build_unet, predict_tiled
        >>> from keras_unet.normalization import normalize_image
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> image = np.random.default_rng(0).normal(size=(50, 60, 1)).astype("float32")
        >>> pixels = normalize_image(image).numpy()
        >>> part = predict_window(model, lambda r, c: pixels[r][:, c], (50, 60), (13, 7, 20, 30))
        >>> bool(np.abs(part - predict_tiled(model, image)[13:33, 7:37]).max() < 1e-4)
        True
    """
    result = None
    ndim = len(image_shape) if isinstance(image_shape, (tuple, list)) else 2
    for start, block in iter_window_rows(network, read, image_shape, window,
                                         tile_size=tile_size, batch_size=batch_size, tta=tta):
        if result is None:
            result = np.empty((*window[ndim:], block.shape[-1]), np.float32)
        result[start:start + len(block)] = block
    return result


def _check_window(image_shape, window, ndim: int = 2) -> tuple[int, ...]:
    def integers(value, count):
        return (isinstance(value, (tuple, list)) and len(value) == count
                and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                        for v in value))

    volume = ndim == 3
    if not integers(image_shape, ndim) or min(image_shape) < 1:
        raise InputError(f"image_shape must be ({'depth, ' if volume else ''}height, width) of "
                         f"positive integers, got {image_shape!r}.")
    if not integers(window, 2 * ndim):
        names = ("front, top, left, depth, height, width" if volume
                 else "top, left, height, width")
        raise InputError(f"window must be ({names}) integers, got {window!r}.")
    starts, sizes = window[:ndim], window[ndim:]
    if any(start < 0 or size < 1 or start + size > whole
           for start, size, whole in zip(starts, sizes, image_shape)):
        raise InputError(f"window {tuple(window)!r} is not a non-empty part of an image of shape "
                         f"{tuple(image_shape)!r}.")
    return tuple(int(size) for size in sizes)
