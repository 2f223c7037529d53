"""Overlap-tile prediction in TensorFlow ops, so that the served graph tiles images by itself.

:func:`keras_unet.predict_tiled` plans its tiles in Python for each image; a SavedModel must do
the same inside its graph for any height and width a client sends. Everything that does not
depend on the image size (tile, step, border, blending ramp) is read at export time from
:func:`keras_unet.inference.plan_axis` itself; the graph only repeats the few lines that count
tiles for the size at hand (tests check them against ``plan_axis`` for every size). The images
are normalised by :func:`keras_unet.normalization.normalize_image`, mirrored with the indices of
:func:`keras_unet.inference.reflect_indices`, cut into tiles that the model runs on a few at a
time, and the tile outputs are laid side by side (valid padding: seamless) or blended with the
same linear ramps (same padding), so the served result equals ``predict_tiled``.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from keras_unet.inference import (ModelGeometry, model_geometry, plan_axis, plan_tiles,
                                  tile_step, valid_tile_size)
from keras_unet.normalization import normalize_image

DEFAULT_TILE_OUTPUT = 512
"""Output pixels per tile side when neither ``tile_size`` nor the model fixes the tile."""


@dataclasses.dataclass(frozen=True)
class AxisTiling:
    """The export-time constants that tile one image axis in the graph.

    Attributes:
        padding: the model's padding, ``"valid"`` or ``"same"``.
        tile: model input tile; for ``shrink`` the largest one.
        step: output pixels a ``tile`` contributes (valid) or advances by (same, several tiles).
        shrink: valid padding with a free input size: tiles shrink to fit the image as in
            ``plan_axis(size, geom, None, max_tile=tile)`` (the result does not depend on it).
        grid: ``2**depth``; valid tiles (and their steps) differ by multiples of it.
        smallest_tile: the smallest valid tile, ``valid_tile_size(1)``, and its step below.
        smallest_step: output step of ``smallest_tile``.
        before: mirrored pixels before the image (valid: the border; same: the blend margin).
        weights: same padding: the ramp that blends a tile's output with its neighbours'.

    Example:
        >>> geom = ModelGeometry(2, "valid", 1, 2, (None, None), 4)
        >>> tiling = axis_tiling(geom, 64, shrink=True)
        >>> tiling.step, tiling.before, tiling.smallest_tile, tiling.smallest_step
        (24, 20, 44, 4)
    """

    padding: str
    tile: int
    step: int
    shrink: bool
    grid: int
    smallest_tile: int
    smallest_step: int
    before: int
    weights: tuple[float, ...]


def axis_tiling(geom: ModelGeometry, tile: int, shrink: bool) -> AxisTiling:
    """Reads the constants of one axis from ``plan_axis`` on an image larger than a tile.

    Example:
        >>> geom = ModelGeometry(2, "same", 1, 2, (None, None), 4)
        >>> tiling = axis_tiling(geom, 32, shrink=False)
        >>> tiling.step, tiling.before, len(tiling.weights)
        (24, 4, 32)
    """
    plan = plan_axis(4 * tile, geom, tile, tile)
    smallest = valid_tile_size(1, geom.depth, geom.padding)
    return AxisTiling(geom.padding, tile, plan.step, shrink and geom.padding == "valid",
                      2**geom.depth, smallest, tile_step(smallest, geom.depth, geom.padding),
                      plan.before, tuple(float(w) for w in plan.weights))


@dataclasses.dataclass(frozen=True)
class ServingTiling:
    """How the served graph tiles images: one :class:`AxisTiling` per axis, tiles per call.

    Build it with :func:`serving_tiling`.

    Example:
        >>> from keras_unet import build_unet
        >>> tiling = serving_tiling(build_unet((None, None, 3), 4, filters=4, depth=2), 64)
        >>> tiling.batch, tiling.channels, tiling.num_classes
        (4, 3, 4)
    """

    rows: AxisTiling
    cols: AxisTiling
    batch: int
    channels: int
    num_classes: int


def serving_tiling(model: keras.Model,
                   tile_size: int | tuple[int, int] | None = None) -> ServingTiling:
    """The tiling of the served graph for ``model``; ``tile_size`` as in ``predict_tiled``.

    ``tile_size`` defaults to the model's fixed input size, else to
    :data:`DEFAULT_TILE_OUTPUT` output pixels per tile. Valid-padding models with a free input
    size run tiles up to that size, shrunk to fit smaller images (their result does not depend
    on the tile); same-padding models always run exactly that tile (their blend does).

    Raises:
        ValueError: if the model is not a U-Net that can be tiled or the tile does not fit it.

    Example:
        >>> from keras_unet import build_unet
        >>> tiling = serving_tiling(build_unet((None, None, 1), 2, filters=4, depth=2), 84)
        >>> tiling.rows.tile, tiling.rows.step, tiling.rows.shrink, tiling.batch
        (84, 44, True, 4)
    """
    geom = model_geometry(model)
    if tile_size is None and None in geom.input_size:
        tile_size = valid_tile_size(DEFAULT_TILE_OUTPUT, geom.depth, geom.padding)
    rows, cols, batch = plan_tiles((1, 1), geom, tile_size)  # validates the tile size
    shrink = None in geom.input_size
    return ServingTiling(axis_tiling(geom, rows.tile, shrink), axis_tiling(geom, cols.tile, shrink),
                         batch, geom.channels, geom.num_classes)



@dataclasses.dataclass(frozen=True)
class AxisPlan:
    """One axis of one request, as tensors: the in-graph twin of ``inference.AxisPlan``.

    ``before`` is the mirrored margin the tiles start at; for same padding it is also where the
    image starts in the stitched output (valid-padding outputs start at the image).

    Example:
        >>> geom = ModelGeometry(2, "same", 1, 2, (None, None), 4)
        >>> plan = plan_axis_in_graph(tf.constant(100), axis_tiling(geom, 32, shrink=False))
        >>> int(plan.count), int(plan.keep)
        (5, 32)
    """

    size: tf.Tensor
    tile: tf.Tensor
    step: tf.Tensor
    count: tf.Tensor
    before: tf.Tensor
    weights: tf.Tensor

    @property
    def keep(self) -> tf.Tensor:
        """Output pixels of a tile that are used (the length of ``weights``)."""
        return tf.shape(self.weights)[0]


def _ceil_div(a, b):
    return -(-a // b)


def plan_axis_in_graph(size: tf.Tensor, tiling: AxisTiling) -> AxisPlan:
    """Tiles an axis of ``size`` pixels, as ``plan_axis`` would, with int32 tensors.

    Example:
        >>> geom = ModelGeometry(2, "valid", 1, 2, (None, None), 4)
        >>> plan = plan_axis_in_graph(tf.constant(130), axis_tiling(geom, 92, shrink=True))
        >>> [int(t) for t in (plan.tile, plan.step, plan.count, plan.before)]
        [84, 44, 3, 20]
    """
    size = tf.cast(size, tf.int32)
    if tiling.padding == "valid":
        tile, step = tf.constant(tiling.tile), tf.constant(tiling.step)
        if tiling.shrink:  # plan_axis with tile=None: as few tiles as the largest, made smaller
            need = _ceil_div(size, _ceil_div(size, step))
            larger = tf.maximum(0, _ceil_div(need - tiling.smallest_step, tiling.grid))
            tile = tiling.smallest_tile + larger * tiling.grid
            step = tiling.smallest_step + larger * tiling.grid
        return AxisPlan(size, tile, step, _ceil_div(size, step), tf.constant(tiling.before),
                        tf.ones([step], tf.float32))
    tile, step, margin = tiling.tile, tiling.step, tiling.before
    single = size <= tile  # one tile mirrored at its far end, nothing blended
    count = tf.maximum(1, _ceil_div(size + 2 * margin - tile, step) + 1)
    return AxisPlan(size, tf.constant(tile), tf.where(single, tile, step),
                    tf.where(single, 1, count), tf.where(single, 0, margin),
                    tf.where(single, tf.ones([tile]), tf.constant(tiling.weights, tf.float32)))


def reflect_indices_in_graph(index: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Image indices of (any) positions mirrored at the edges, as ``reflect_indices`` gives.

    Example:
        >>> reflect_indices_in_graph(tf.range(-2, 6), tf.constant(4)).numpy().tolist()
        [2, 1, 0, 1, 2, 3, 2, 1]
    """
    period = tf.maximum(2 * (size - 1), 1)
    index = tf.math.floormod(index, period)
    return tf.where(index > size - 1, period - index, index)


def _tile_indices(plan: AxisPlan) -> tf.Tensor:
    """(count, tile) image indices read by each tile of an axis."""
    starts = tf.range(plan.count) * plan.step - plan.before
    return reflect_indices_in_graph(starts[:, None] + tf.range(plan.tile)[None, :], plan.size)


def cut_tiles(images: tf.Tensor, rows: AxisPlan, cols: AxisPlan) -> tf.Tensor:
    """Mirror-padded tiles of a batch (B, H, W, C), as (B * rows * cols, tile_h, tile_w, C).

    Example:
        >>> geom = ModelGeometry(2, "same", 1, 2, (None, None), 4)
        >>> plan = plan_axis_in_graph(tf.constant(5), axis_tiling(geom, 8, shrink=False))
        >>> images = tf.reshape(tf.range(25.0), (1, 5, 5, 1))
        >>> cut_tiles(images, plan, plan)[0, 7, :, 0].numpy().tolist()  # mirrors image row 1
        [5.0, 6.0, 7.0, 8.0, 9.0, 8.0, 7.0, 6.0]
    """
    tiles = tf.gather(images, _tile_indices(rows), axis=1)  # B, ny, th, W, C
    tiles = tf.gather(tiles, _tile_indices(cols), axis=3)  # B, ny, th, nx, tw, C
    tiles = tf.transpose(tiles, [0, 1, 3, 2, 4, 5])
    return tf.reshape(tiles, tf.stack([-1, rows.tile, cols.tile, tf.shape(images)[-1]]))


def run_in_batches(model: keras.Model, tiles: tf.Tensor, batch: int, rows: AxisPlan,
                   cols: AxisPlan) -> tf.Tensor:
    """The model on ``batch`` tiles at a time; returns the kept, weighted tile outputs.

    One model call at a time (``parallel_iterations=1``) keeps the memory of a request bounded
    by the batch of tiles, whatever the image size.

    Example:
        >>> from keras_unet import build_unet
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> plan = plan_axis_in_graph(tf.constant(24), serving_tiling(model, 64).rows)  # 1 tile
        >>> run_in_batches(model, tf.zeros((5, 64, 64, 1)), 2, plan, plan).shape
        TensorShape([5, 24, 24, 2])
    """
    count = tf.shape(tiles)[0]
    weights = rows.weights[None, :, None, None] * cols.weights[None, None, :, None]
    outputs = tf.TensorArray(tf.float32, size=_ceil_div(count, batch), infer_shape=False,
                             element_shape=tf.TensorShape([None, None, None, None]))

    def body(i, outputs):
        output = model(tiles[i * batch:(i + 1) * batch], training=False)
        output = tf.cast(output, tf.float32)[:, :rows.keep, :cols.keep] * weights
        return i + 1, outputs.write(i, output)

    _, outputs = tf.while_loop(lambda i, _: i < outputs.size(), body, (0, outputs),
                               parallel_iterations=1)
    return outputs.concat()


def _overlap_add(blocks: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
    """Sums (B, n, keep, R) blocks placed every ``step`` along axis 1: (B, (n-1)*step+keep, R).

    Blocks overlap their next neighbour only (``keep <= 2 * step``), so the heads and the tails
    of all blocks each tile the axis without overlap and are added with a shift of one step.
    """
    shape = tf.shape(blocks)
    batch, count, keep = shape[0], shape[1], shape[2]
    head = tf.reshape(blocks[:, :, :step], [batch, count * step, -1])
    tail = tf.pad(blocks[:, :, step:], [[0, 0], [0, 0], [0, 2 * step - keep], [0, 0]])
    tail = tf.reshape(tail, [batch, count * step, -1])
    total = tf.pad(head, [[0, 0], [0, step], [0, 0]]) + tf.pad(tail, [[0, 0], [step, 0], [0, 0]])
    return total[:, :(count - 1) * step + keep]


def stitch(outputs: tf.Tensor, batch: tf.Tensor, rows: AxisPlan, cols: AxisPlan,
           blended: bool) -> tf.Tensor:
    """Lays the tile outputs (B * ny * nx, keep_h, keep_w, K) out as (B, H, W, K).

    Valid-padding outputs (``blended=False``) sit side by side; same-padding outputs are added
    where they overlap and divided by the summed ramp weights, as ``predict_tiled`` does.

    Example:
        >>> geom = ModelGeometry(2, "valid", 1, 2, (None, None), 4)
        >>> plan = plan_axis_in_graph(tf.constant(3), axis_tiling(geom, 44, shrink=False))
        >>> outputs = tf.reshape(tf.range(16.0), (1, 4, 4, 1))
        >>> stitch(outputs, 1, plan, plan, blended=False)[0, :, :, 0].numpy().tolist()
        [[0.0, 1.0, 2.0], [4.0, 5.0, 6.0], [8.0, 9.0, 10.0]]
    """
    classes = tf.shape(outputs)[-1]
    grid = tf.reshape(outputs, tf.stack([batch, rows.count, cols.count, rows.keep, cols.keep,
                                         classes]))
    grid = tf.transpose(grid, [0, 1, 3, 2, 4, 5])  # B, ny, kh, nx, kw, K
    if not blended:
        image = tf.reshape(grid, tf.stack([batch, rows.count * rows.keep,
                                           cols.count * cols.keep, classes]))
        return image[:, :rows.size, :cols.size]
    flat = tf.reshape(grid, tf.stack([batch, rows.count, rows.keep, -1]))
    image = _overlap_add(flat, rows.step)  # B, Lh, nx * kw * K
    length = tf.shape(image)[1]
    image = tf.reshape(image, tf.stack([batch, length, cols.count, cols.keep, classes]))
    image = tf.reshape(tf.transpose(image, [0, 2, 3, 1, 4]), tf.stack([batch, cols.count,
                                                                       cols.keep, -1]))
    image = _overlap_add(image, cols.step)  # B, Lw, Lh * K
    image = tf.transpose(tf.reshape(image, tf.stack([batch, -1, length, classes])), [0, 2, 1, 3])
    image = image / (_weight_sum(rows)[:, None, None] * _weight_sum(cols)[None, :, None])
    return image[:, rows.before:rows.before + rows.size, cols.before:cols.before + cols.size]


def _weight_sum(plan: AxisPlan) -> tf.Tensor:
    blocks = tf.tile(plan.weights[None, None, :, None], tf.stack([1, plan.count, 1, 1]))
    return _overlap_add(blocks, plan.step)[0, :, 0]


def predict_images(model: keras.Model, images: tf.Tensor, tiling: ServingTiling) -> tf.Tensor:
    """Class probabilities (B, H, W, K) of a batch of same-sized images, tiled in the graph.

    Each image is normalised over its whole extent, mirrored, tiled and stitched exactly as
    :func:`keras_unet.predict_tiled` does; the images must already be checked (see
    :mod:`keras_unet.serving.signatures`).

    Example:
        >>> import numpy as np
        >>> from keras_unet import build_unet, predict_tiled
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> image = np.random.default_rng(0).integers(0, 255, (1, 37, 53, 1)).astype("float32")
        >>> served = predict_images(model, tf.constant(image), serving_tiling(model, 64))
        >>> bool(np.abs(served[0] - predict_tiled(model, image[0])).max() < 1e-4)
        True
    """
    normalized = normalize_image(images)
    shape = tf.shape(images)
    rows = plan_axis_in_graph(shape[1], tiling.rows)
    cols = plan_axis_in_graph(shape[2], tiling.cols)
    tiles = cut_tiles(normalized, rows, cols)
    if not tiling.rows.shrink:  # a fixed tile: give the model its static shape
        tiles.set_shape([None, tiling.rows.tile, tiling.cols.tile, tiling.channels])
    outputs = run_in_batches(model, tiles, tiling.batch, rows, cols)
    outputs.set_shape([None, None, None, tiling.num_classes])
    return stitch(outputs, shape[0], rows, cols, blended=tiling.rows.padding == "same")


def class_labels(probabilities: tf.Tensor) -> tf.Tensor:
    """int32 class of every pixel: argmax, or ``p > 0.5`` for one sigmoid channel.

    Example:
        >>> class_labels(tf.constant([[[[0.9, 0.1], [0.2, 0.8]]]])).numpy().tolist()
        [[[0, 1]]]
    """
    if probabilities.shape[-1] == 1:
        return tf.cast(probabilities[..., 0] > 0.5, tf.int32)
    return tf.argmax(probabilities, axis=-1, output_type=tf.int32)
