"""How an image axis is cut into tiles: one plan for every way this package predicts.

Each axis is planned on its own, so volumes are tiled as images are, with one more axis (and,
for anisotropic networks, a grid, border and smallest tile of its own per axis).
Valid-padding tiles start on the max-pooling grid (multiples of ``2**depth``) of the image
mirror-padded by the border, so their outputs sit side by side and equal one pass over the
whole padded image. Same-padding tiles overlap by a quarter and are blended with linear ramps.

The choice that does not depend on the image (:class:`AxisTiling`: tile size, shrinking) is made
in Python; :func:`plan_axis` turns it into the tiles of an axis of a given length with
TensorFlow ops, so the served graph runs the very function that local prediction runs eagerly
(:func:`concrete_plan`). The tile size defaults to the largest within a memory budget.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_unet import geometry
from keras_unet.errors import InputError
from keras_unet.inference.mirror import mirror
from keras_unet.inference.network import ModelGeometry
from keras_unet.scalars import python_int

MEMORY_BUDGET = 2 * 2**30
"""Bytes of activations one model call may use; sets the default tile size and batch."""

ACTIVATION_FACTOR = 5
"""Peak memory of a forward pass, in float32 full-resolution maps of ``filters`` channels
(``benchmarks/inference_benchmark.py memory``; figures in benchmarks/README.md)."""

MAX_TILE = 2048
"""Largest default tile side: the border waste is small there, while the band of tiles that a
streamed image holds grows with the tile."""

SAME_OVERLAP = 0.25
"""Fraction of a tile shared with its neighbour when tiling a "same"-padding model."""


@dataclasses.dataclass(frozen=True)
class AxisTiling:
    """The image-independent tiling of one axis, chosen by :func:`axis_tiling`.

    Attributes:
        padding: the model's padding, ``"valid"`` or ``"same"``.
        grid: the axis's pooling grid, ``2**depth`` when it pools at every level; tiles start
            on it and valid tiles differ by multiples of it.
        border: pixels the network trims from each side (0 for same padding).
        tile: the tile; with ``shrink``, the largest one.
        shrink: shrink the tile to fit short axes (valid padding: the result does not change).
        smallest_tile: the smallest tile the network takes.

    Example:
        >>> axis_tiling(ModelGeometry(2, "valid", 1, 2, (None, None), 4), None, 92)
        AxisTiling(padding='valid', grid=4, border=20, tile=92, shrink=True, smallest_tile=44)
    """

    padding: str
    grid: int
    border: int
    tile: int
    shrink: bool
    smallest_tile: int


def axis_tiling(geom: ModelGeometry, tile: int | None, max_tile: int, axis: int = 0
                ) -> AxisTiling:
    """A fixed ``tile``, or (``tile=None``) tiles of up to ``max_tile`` that shrink to fit, for
    spatial ``axis`` of the model (all axes of a 2D or isotropic model are alike)."""
    pools, kernels = geom.axis_layouts[axis]
    grid = geometry.grid(geom.depth, pools)
    smallest = geometry.valid_tile_size(1, geom.depth, geom.padding, pools=pools, kernels=kernels)
    shrink = tile is None
    if shrink and geom.padding == "valid":
        tile = smallest + max(0, (max_tile - smallest) // grid) * grid
    elif shrink:
        tile = max(grid, max_tile // grid * grid)
    border = geometry.border(geom.depth, geom.padding, pools=pools, kernels=kernels)
    return AxisTiling(geom.padding, grid, border, tile, shrink, smallest)


@dataclasses.dataclass(frozen=True)
class AxisPlan:
    """The tiles of one axis of ``length`` pixels: int32 tensors, or ints (:func:`concrete_plan`).

    Tile ``k`` reads padded pixels ``[k * step, k * step + tile)``, i.e. axis pixels from
    ``k * step - before``, and adds its first ``keep`` output pixels times ``weights`` to
    accumulator pixels ``[k * step, k * step + keep)``; axis pixel ``i`` is accumulator pixel
    ``i + origin``.

    Example:
        >>> tiling = axis_tiling(ModelGeometry(2, "same", 1, 2, (None, None), 4), 32, 32)
        >>> plan = concrete_plan(plan_axis(100, tiling))
        >>> plan.step, plan.count, plan.before, plan.keep, plan.accumulated
        (24, 5, 4, 32, 128)
    """

    length: tf.Tensor | int
    tile: tf.Tensor | int
    step: tf.Tensor | int
    count: tf.Tensor | int
    before: tf.Tensor | int
    origin: tf.Tensor | int
    weights: tf.Tensor | np.ndarray

    @property
    def keep(self) -> tf.Tensor | int:
        """Output pixels of a tile that are used (the length of ``weights``)."""
        return self.weights.shape[0] if isinstance(self.weights, np.ndarray) else \
            tf.shape(self.weights)[0]

    @property
    def padded(self) -> tf.Tensor | int:
        """Length of the mirror-padded axis the tiles read."""
        return (self.count - 1) * self.step + self.tile

    @property
    def accumulated(self) -> tf.Tensor | int:
        """Length of the accumulator the tile outputs are added to."""
        return (self.count - 1) * self.step + self.keep


def _ceil_div(a, b):
    return -(-a // b)


def plan_axis(length, tiling: AxisTiling) -> AxisPlan:
    """Tiles an axis of ``length`` pixels (a Python int or an int32 tensor) with TF ops.

    Example:
        >>> tiling = axis_tiling(ModelGeometry(2, "valid", 1, 2, (None, None), 4), None, 92)
        >>> plan = concrete_plan(plan_axis(130, tiling))
        >>> plan.tile, plan.step, plan.count, plan.before
        (84, 44, 3, 20)
    """
    length = tf.cast(length, tf.int32)
    if tiling.padding == "valid":
        return _plan_valid(length, tiling)
    return _plan_same(length, tiling)


def _valid_step(tile, tiling: AxisTiling):
    out = tile - 2 * tiling.border
    return out - out % tiling.grid


def _plan_valid(length: tf.Tensor, tiling: AxisTiling) -> AxisPlan:
    tile, step = tf.constant(tiling.tile), tf.constant(_valid_step(tiling.tile, tiling))
    if tiling.shrink:  # as few tiles as the largest tile needs, each made as small as possible
        need = _ceil_div(length, _ceil_div(length, step))
        smallest_step = _valid_step(tiling.smallest_tile, tiling)
        larger = tf.maximum(0, _ceil_div(need - smallest_step, tiling.grid))
        tile = tiling.smallest_tile + larger * tiling.grid
        step = smallest_step + larger * tiling.grid
    return AxisPlan(length, tile, step, _ceil_div(length, step), tf.constant(tiling.border),
                    tf.constant(0), tf.ones([step], tf.float32))


def _plan_same(length: tf.Tensor, tiling: AxisTiling) -> AxisPlan:
    tile = tf.constant(tiling.tile)
    if tiling.shrink:
        tile = tf.minimum(_ceil_div(length, tiling.grid) * tiling.grid, tile)
    overlap = tf.cast(tf.cast(tile, tf.float64) * SAME_OVERLAP, tf.int32)
    overlap = overlap // tiling.grid * tiling.grid
    step, margin = tile - overlap, overlap // 2
    count = tf.maximum(1, _ceil_div(length + 2 * margin - tile, step) + 1)
    position = tf.range(tile)
    ramp = tf.cast(tf.minimum(position, tile - 1 - position) + 1, tf.float32)
    ramp = tf.minimum(ramp / tf.cast(overlap + 1, tf.float32), 1.0)
    single = length <= tile  # one tile, mirrored at its far end, nothing blended
    return AxisPlan(length, tile, tf.where(single, tile, step), tf.where(single, 1, count),
                    tf.where(single, 0, margin), tf.where(single, 0, margin),
                    tf.where(single, tf.ones([tile]), ramp))


def concrete_plan(plan: AxisPlan) -> AxisPlan:
    """An eagerly computed plan with Python ints and a NumPy ``weights`` array."""
    values = {field.name: getattr(plan, field.name) for field in dataclasses.fields(plan)}
    return AxisPlan(**{name: (np.asarray(value, np.float32) if name == "weights"
                              else int(value)) for name, value in values.items()})


def tile_indices(plan: AxisPlan, start, size) -> tf.Tensor:
    """(count, tile) indices of the axis pixels each tile reads, mirrored at ``[0, size)``.

    ``start`` is the axis pixel that accumulator pixel ``origin`` stands for (0 for a whole
    image, the window's first pixel for a window).

    Example:
        >>> tiling = axis_tiling(ModelGeometry(2, "same", 1, 2, (None, None), 4), 8, 8)
        >>> tile_indices(plan_axis(5, tiling), 0, 5).numpy().tolist()
        [[0, 1, 2, 3, 4, 3, 2, 1]]
    """
    first = tf.range(plan.count) * plan.step - plan.before + start
    return mirror(first[:, None] + tf.range(plan.tile)[None, :], size)


def tilings(geom: ModelGeometry, tile_size=None, batch_size: int = geometry.PREDICTION_BATCH,
            max_tile: int | None = None) -> tuple[AxisTiling, ...]:
    """The tiling of every axis (rows and columns; planes, rows and columns of a volume) and
    the tiles per model call, checked: ``(*axes, batch)``.

    ``tile_size`` (an int or a ``(height, width)`` pair of model input sizes; a volume's
    ``(depth, height, width)``) defaults to the model's fixed input size, else to tiles of up
    to ``max_tile`` px per axis (default: the largest whose :func:`activation_bytes` fit
    :data:`MEMORY_BUDGET`, at most :data:`MAX_TILE`), shrunk to cover the image with little
    waste. The batch is ``batch_size`` tiles, fewer when large tiles would exceed the budget
    together.

    Raises:
        ValueError: for a tile the model cannot take or that contradicts its fixed input size.

    Example:
        >>> rows, cols, batch = tilings(ModelGeometry(2, "valid", 1, 2, (None, None), 4), 64)
        >>> rows.tile, rows.shrink, batch
        (64, False, 4)
    """
    batch_size = python_int(batch_size)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if max_tile is None:
        max_tile = min(MAX_TILE, _root(MEMORY_BUDGET // activation_bytes(geom, *[1] * geom.ndim),
                                       geom.ndim))
    axes = tuple(axis_tiling(geom, tile, max_tile, axis)
                 for axis, tile in enumerate(requested_tiles(tile_size, geom)))
    per_call = activation_bytes(geom, *(tiling.tile for tiling in axes))
    memory = physical_memory()
    if per_call > memory:
        side = _root(memory // activation_bytes(geom, *[1] * geom.ndim), geom.ndim)
        raise InputError(f"tile_size {tile_size!r}: needs about {per_call / 2**30:.0f} GiB for "
                         f"one tile of this network; this machine has {memory / 2**30:.0f} GiB: "
                         f"use tiles of at most about {side} px (or leave the tile size to "
                         "keras_unet).")
    return (*axes, max(1, min(batch_size, MEMORY_BUDGET // per_call)))


def physical_memory() -> int:
    """Bytes of memory of this machine (``os.sysconf``), or a generous 2**40 where unknown.

    Example:
        >>> physical_memory() > 2**28
        True
    """
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**40


def _root(value: int, n: int) -> int:
    """The largest integer whose ``n``-th power is at most ``value``."""
    if n == 2:
        return math.isqrt(value)
    root = int(round(value ** (1 / n)))
    while root**n > value:
        root -= 1
    while (root + 1) ** n <= value:
        root += 1
    return root


def plan_tiles(shape: tuple[int, ...], geom: ModelGeometry, tile_size=None,
               batch_size: int = geometry.PREDICTION_BATCH) -> tuple[AxisPlan, ...]:
    """Concrete plans of an image of ``shape = (height, width)`` (a volume's ``(depth, height,
    width)``) and the batch: ``(*plans, batch)`` (see :func:`tilings`).

    Example:
        >>> geom = ModelGeometry(2, "valid", 1, 2, (None, None), 4)
        >>> rows, cols, batch = plan_tiles((37, 53), geom)
        >>> (rows.tile, rows.count), (cols.tile, cols.count), batch
        ((80, 1), (96, 1), 4)
    """
    *axes, batch = tilings(geom, tile_size, batch_size)
    return (*(concrete_plan(plan_axis(length, tiling)) for length, tiling in zip(shape, axes)),
            batch)


def activation_bytes(geom: ModelGeometry, *sizes: int) -> int:
    """Estimated peak memory of one forward pass on a ``height`` x ``width`` tile (a volume's
    ``depth`` x ``height`` x ``width``), in bytes.

    :data:`ACTIVATION_FACTOR` float32 maps of the first level's ``filters`` channels.

    Example:
        >>> paper = ModelGeometry(4, "valid", 1, 2, (None, None), 64)
        >>> activation_bytes(paper, 1276, 1276) / 2**30
        1.94...
    """
    return 4 * geom.filters * ACTIVATION_FACTOR * math.prod(sizes)


AXES = ("depth", "height", "width")
"""The spatial axes as messages name them (an image's are the last two)."""


def requested_tiles(tile_size, geom: ModelGeometry) -> tuple[int | None, ...]:
    """``tile_size`` as a checked ``(rows, cols)`` pair (a volume's ``(planes, rows, cols)``);
    ``None`` entries are free. An int is the tile of every axis.

    Example:
        >>> requested_tiles(None, ModelGeometry(2, "valid", 1, 2, (64, None), 4))
        (64, None)
        >>> requested_tiles(44, ModelGeometry(2, "valid", 1, 2, (None,) * 3, 4))
        (44, 44, 44)
    """
    names = AXES[-geom.ndim:]
    if tile_size is None:
        tiles = geom.input_size
    else:
        tiles = tuple(python_int(tile) for tile in (
            tile_size if isinstance(tile_size, Sequence) else (tile_size,) * geom.ndim))
        if len(tiles) != geom.ndim or not all(isinstance(t, int) and not isinstance(t, bool)
                                              and t > 0 for t in tiles):
            shape = "(height, width) pair" if geom.ndim == 2 else "(depth, height, width) triple"
            raise InputError(f"tile_size must be a positive int or a {shape}, got "
                             f"{tile_size!r}.")
        for tile, fixed, axis in zip(tiles, geom.input_size, names):
            if fixed is not None and tile != fixed:
                raise InputError(f"tile_size {tile_size!r} differs from the model's fixed input "
                                 f"{axis} {fixed}; leave tile_size=None to use it.")
    for tile, axis, (pools, kernels) in zip(tiles, names, geom.axis_layouts):
        if tile is None:
            continue
        layout = {"pools": pools, "kernels": kernels}
        where = "" if geom.ndim == 2 else f" ({axis})"
        smallest = geometry.valid_tile_size(1, geom.depth, geom.padding, **layout)
        if tile < smallest:  # no step of output; the sizes that fit below it would not do either
            grid = geometry.grid(geom.depth, pools)
            raise InputError(
                f"tile_size {tile_size!r}{where}: the smallest tile this network can tile with "
                f"is {smallest} (its output must advance by at least one "
                + ("2**depth" if grid == 2**geom.depth else "pooling grid")
                + f" = {grid} step); use at least {smallest}.")
        try:
            geometry.tile_step(tile, geom.depth, geom.padding, **layout)
        except ValueError as error:
            raise InputError(f"tile_size {tile_size!r}{where}: {error}") from None
    return tuple(tiles)
