"""Overlap-tile prediction inside the served graph, for any image size a client sends.

The graph runs the engine's own functions: the tiles of each axis are planned by
:func:`keras_unet.inference.plan.plan_axis` (TensorFlow ops, so the plan follows the request's
size), mirrored by :func:`keras_unet.inference.mirror.mirror` and stitched by
:mod:`keras_unet.inference.stitching`; images are normalised by
:func:`keras_unet.normalization.normalize_image`. The served result therefore equals
:func:`keras_unet.predict_tiled` with the same tile size. A 3D U-Net's graph tiles volumes
(batch, depth, height, width, channels) the same way, with one more axis.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from keras_unet.geometry import valid_tile_size
from keras_unet.inference.network import model_geometry
from keras_unet.inference.plan import (
    AxisPlan,
    AxisTiling,
    axis_tiling,
    plan_axis,
    requested_tiles,
    tile_indices,
    tilings,
)
from keras_unet.inference.stitching import accumulated_weights, stitch_all, weighted_outputs
from keras_unet.normalization import normalize_image

DEFAULT_TILE_OUTPUT = 512
"""Output pixels per tile side when neither ``tile_size`` nor the model fixes the tile."""

DEFAULT_VOLUME_TILE_OUTPUT = 64
"""A volume's output voxels per tile side, likewise (64^3 voxels: about an image's 512^2)."""


@dataclasses.dataclass(frozen=True)
class ServingTiling:
    """How the served graph tiles images: the tiling of each axis and tiles per model call.

    Example:
        >>> from keras_unet import build_unet
        >>> tiling = serving_tiling(build_unet((None, None, 3), 4, filters=4, depth=2), 64)
        >>> tiling.rows.tile, tiling.rows.shrink, tiling.batch, tiling.channels
        (64, True, 4, 3)
    """

    rows: AxisTiling
    cols: AxisTiling
    batch: int
    channels: int
    num_classes: int
    planes: AxisTiling | None = None

    @property
    def axes(self) -> tuple[AxisTiling, ...]:
        """The tiling of every spatial axis: rows and columns (planes first for volumes)."""
        return (self.rows, self.cols) if self.planes is None else (self.planes, self.rows,
                                                                   self.cols)


def serving_tiling(model: keras.Model, tile_size=None) -> ServingTiling:
    """The tiling of the served graph for ``model``; ``tile_size`` as in ``predict_tiled``.

    ``tile_size`` defaults to the model's fixed input size, else to :data:`DEFAULT_TILE_OUTPUT`
    output pixels per tile (:data:`DEFAULT_VOLUME_TILE_OUTPUT` voxels for volumes). Valid-padding
    models with a free input size run tiles up to that size, shrunk to fit smaller images (their
    result does not depend on the tile); same-padding models always run exactly that tile
    (their blend does), as ``predict_tiled`` does.

    Raises:
        ValueError: if the model is not a U-Net that can be tiled or the tile does not fit it.

    Example:
        >>> from keras_unet import build_unet
        >>> tiling = serving_tiling(build_unet((None, None, 1), 2, filters=4, depth=2), 84)
        >>> tiling.rows.tile, tiling.rows.shrink, tiling.batch
        (84, True, 4)
    """
    geom = model_geometry(model)
    if tile_size is None and None in geom.input_size:
        output = DEFAULT_TILE_OUTPUT if geom.ndim == 2 else DEFAULT_VOLUME_TILE_OUTPUT
        tile_size = tuple(valid_tile_size(output, geom.depth, geom.padding, pools=pools,
                                          kernels=kernels)
                          for pools, kernels in geom.axis_layouts)
        tile_size = tuple(fixed or tile for fixed, tile in zip(geom.input_size, tile_size))
        if len(set(tile_size)) == 1:
            tile_size = tile_size[0]
    tiles = requested_tiles(tile_size, geom)
    batch = tilings(geom, tiles)[-1]  # checks the tiles and sizes the batch
    axes = [  # valid tiles of a free axis shrink to fit: the same result, less work
        axis_tiling(geom, None if geom.padding == "valid" and fixed is None else tile, tile, axis)
        for axis, (tile, fixed) in enumerate(zip(tiles, geom.input_size))]
    return ServingTiling(axes[-2], axes[-1], batch, geom.channels, geom.num_classes,
                         axes[0] if geom.ndim == 3 else None)


def cut_tiles(images: tf.Tensor, *plans: AxisPlan) -> tf.Tensor:
    """Mirror-padded tiles of a batch (B, H, W, C), as (B * rows * cols, tile_h, tile_w, C);
    a batch of volumes (B, D, H, W, C) gives (B * planes * rows * cols, tile_d, tile_h, tile_w,
    C)."""
    shape = tf.shape(images)
    tiles = images
    for axis, plan in enumerate(plans):  # axis a sits at 1 + 2a once the ones before it are cut
        tiles = tf.gather(tiles, tile_indices(plan, 0, shape[1 + axis]), axis=1 + 2 * axis)
    count = len(plans)
    order = [0, *(1 + 2 * a for a in range(count)), *(2 + 2 * a for a in range(count)),
             1 + 2 * count]
    tiles = tf.transpose(tiles, order)
    return tf.reshape(tiles, tf.stack([-1, *(plan.tile for plan in plans), shape[-1]]))


def run_in_batches(model: keras.Model, tiles: tf.Tensor, batch: int, *plans: AxisPlan
                   ) -> tf.Tensor:
    """The model on ``batch`` tiles at a time; returns the kept, weighted tile outputs.

    One model call at a time (``parallel_iterations=1``) keeps the memory of a request bounded
    by the batch of tiles, whatever the image size.
    """
    count = tf.shape(tiles)[0]
    rank = len(plans) + 2
    outputs = tf.TensorArray(tf.float32, size=-(-count // batch), infer_shape=False,
                             element_shape=tf.TensorShape([None] * rank))

    def body(i, outputs):
        output = model(tiles[i * batch:(i + 1) * batch], training=False)
        return i + 1, outputs.write(i, weighted_outputs(output, *plans))

    _, outputs = tf.while_loop(lambda i, _: i < outputs.size(), body, (0, outputs),
                               parallel_iterations=1)
    return outputs.concat()


def stitch(outputs: tf.Tensor, batch: tf.Tensor, *plans: AxisPlan) -> tf.Tensor:
    """Lays the weighted tile outputs (B * ny * nx, keep_h, keep_w, K) out as (B, H, W, K)
    (volumes: (B * nz * ny * nx, keep_d, keep_h, keep_w, K) as (B, D, H, W, K))."""
    classes = tf.shape(outputs)[-1]
    grid = tf.reshape(outputs, tf.stack([batch, *(plan.count for plan in plans),
                                         *(plan.keep for plan in plans), classes]))
    image = stitch_all(grid, plans, lead=1) / accumulated_weights(plans)
    return image[(slice(None), *(slice(plan.origin, plan.origin + plan.length)
                                 for plan in plans))]


def predict_images(model: keras.Model, images: tf.Tensor, tiling: ServingTiling) -> tf.Tensor:
    """Class probabilities (B, H, W, K) of a batch of same-sized images, tiled in the graph.

    Each image is normalised over its whole extent, mirrored, tiled and stitched exactly as
    :func:`keras_unet.predict_tiled` does; the images must already be checked (see
    :mod:`keras_unet.serving.signatures`). A 3D model's batch of volumes (B, D, H, W, C) gives
    (B, D, H, W, K).

    Example:
        >>> import numpy as np
        >>> from keras_unet import build_unet, predict_tiled
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> image = np.random.default_rng(0).integers(0, 255, (1, 37, 53, 1)).astype("float32")
        >>> served = predict_images(model, tf.constant(image), serving_tiling(model, 64))
        >>> bool(np.abs(served[0] - predict_tiled(model, image[0])).max() < 1e-4)
        True
    """
    axes = tiling.axes
    normalized = normalize_image(images, ndim=len(axes))
    shape = tf.shape(images)
    plans = [plan_axis(shape[1 + axis], tiling_of_axis) for axis, tiling_of_axis in
             enumerate(axes)]
    tiles = cut_tiles(normalized, *plans)
    if not any(axis.shrink for axis in axes):  # a fixed tile: give its shape
        tiles.set_shape([None, *(axis.tile for axis in axes), tiling.channels])
    outputs = run_in_batches(model, tiles, tiling.batch, *plans)
    outputs.set_shape([None] * (len(axes) + 1) + [tiling.num_classes])
    return stitch(outputs, shape[0], *plans)


def class_labels(probabilities: tf.Tensor) -> tf.Tensor:
    """int32 class of every pixel: argmax, or ``p > 0.5`` for one sigmoid channel, in the graph
    (:func:`keras_unet.class_layout.predicted_classes` is the same rule in NumPy).

    Example:
        >>> class_labels(tf.constant([[[[0.9, 0.1], [0.2, 0.8]]]])).numpy().tolist()
        [[[0, 1]]]
    """
    if probabilities.shape[-1] == 1:
        return tf.cast(probabilities[..., 0] > 0.5, tf.int32)
    return tf.argmax(probabilities, axis=-1, output_type=tf.int32)
