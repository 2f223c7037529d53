"""Tile outputs laid back together: weighted overlap-add along one axis, in TensorFlow ops.

Valid-padding outputs (weights 1, no overlap) simply sit side by side; same-padding outputs
are added where they overlap and divided by the summed ramp weights. The band engine
(:mod:`keras_unet.inference.engine`) and the served graph (:mod:`keras_unet.serving.graph`) both
stitch with these functions, one axis at a time (:func:`stitch_axis`), so a volume's tiles are
laid together as an image's are, with one more axis.
"""

from __future__ import annotations

import tensorflow as tf

from keras_unet.inference.plan import AxisPlan


def overlap_add(blocks, step) -> tf.Tensor:
    """Sums (B, n, keep, R) blocks placed every ``step`` along axis 1: (B, (n-1)*step+keep, R).

    Blocks overlap their next neighbour only (``step <= keep <= 2 * step``), so the heads and
    the tails of all blocks each tile the axis without overlap and are added shifted by a step.

    Example:
        >>> blocks = tf.ones((1, 3, 4, 1))
        >>> overlap_add(blocks, 3)[0, :, 0].numpy().tolist()
        [1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0]
    """
    blocks = tf.convert_to_tensor(blocks, tf.float32)
    shape = tf.shape(blocks)
    batch, count, keep = shape[0], shape[1], shape[2]
    head = tf.reshape(blocks[:, :, :step], [batch, count * step, -1])
    tail = tf.pad(blocks[:, :, step:], [[0, 0], [0, 0], [0, 2 * step - keep], [0, 0]])
    tail = tf.reshape(tail, [batch, count * step, -1])
    total = tf.pad(head, [[0, 0], [0, step], [0, 0]]) + tf.pad(tail, [[0, 0], [step, 0], [0, 0]])
    return total[:, :(count - 1) * step + keep]


def weighted_outputs(outputs, *plans: AxisPlan) -> tf.Tensor:
    """Tile outputs (N, h', w', K) cut to the kept pixels and multiplied by the blend weights.

    One plan per spatial axis: ``rows, cols`` for images, ``planes, rows, cols`` for volumes
    (N, d', h', w', K).

    Example:
        >>> from keras_unet.inference.plan import AxisPlan
        >>> plan = AxisPlan(3, 8, 2, 2, 1, 1, tf.constant([0.5, 1.0, 0.5]))
        >>> weighted_outputs(tf.ones((1, 4, 4, 1)), plan, plan)[0, :, :, 0].numpy().tolist()
        [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]]
    """
    rank = len(plans) + 2
    weights = None
    for axis, plan in enumerate(plans, start=1):
        shape = [1] * rank
        shape[axis] = -1
        factor = tf.reshape(tf.cast(plan.weights, tf.float32), shape)
        weights = factor if weights is None else weights * factor
    kept = (slice(None), *(slice(None, plan.keep) for plan in plans))
    return tf.cast(outputs, tf.float32)[kept] * weights


def stitch_axis(outputs, step, tile_axis: int, pixel_axis: int) -> tf.Tensor:
    """Tile outputs added side by side along one axis: the tiles of ``outputs`` are indexed by
    ``tile_axis`` and their kept pixels lie along ``pixel_axis`` (a later axis); the result has
    no ``tile_axis`` and ``(n - 1) * step + keep`` pixels along the former ``pixel_axis``.

    Example:
        >>> outputs = tf.reshape(tf.range(8.0), (1, 2, 1, 2, 2))  # two 1x2 tiles, 2 classes
        >>> stitch_axis(outputs, 2, 1, 3)[0, 0, :, 0].numpy().tolist()
        [0.0, 2.0, 4.0, 6.0]
    """
    outputs = tf.convert_to_tensor(outputs, tf.float32)
    rank = outputs.shape.rank
    order = [axis for axis in range(rank) if axis != tile_axis]
    order.insert(pixel_axis - 1, tile_axis)  # the tiles just before their pixels
    moved = tf.transpose(outputs, order)
    shape = tf.shape(moved)
    lead, rest = shape[:pixel_axis - 1], shape[pixel_axis + 1:]
    flat = tf.reshape(moved, tf.stack([tf.reduce_prod(lead), shape[pixel_axis - 1],
                                       shape[pixel_axis], tf.reduce_prod(rest)]))
    stitched = overlap_add(flat, step)
    return tf.reshape(stitched, tf.concat([lead, [-1], rest], 0))


def stitch_grid(outputs, plans, lead: int = 0) -> tf.Tensor:
    """One band of weighted tile outputs ``(*L, c_1, ..., c_m, k_0, k_1, ..., k_m, K)``, tiles
    on every axis but the first, stitched: ``(*L, k_0, l_1, ..., l_m, K)``.

    What the band engine holds: one row of tiles of an image (``m = 1``), one slab of tiles of
    a volume (``m = 2``). ``lead`` axes come first; ``plans`` are those of axes 1..m.

    Example:
        >>> from keras_unet.inference.plan import AxisPlan
        >>> plan = AxisPlan(4, 6, 2, 2, 0, 0, tf.ones([2]))
        >>> band = tf.reshape(tf.range(8.0), (2, 1, 2, 2))  # one band: two 1x2 tiles
        >>> stitch_grid(band, [plan])[0, :, 0].numpy().tolist()
        [0.0, 2.0, 4.0, 6.0]
    """
    count = len(plans)
    for j in reversed(range(1, count + 1)):
        outputs = stitch_axis(outputs, plans[j - 1].step, lead + j - 1, lead + 2 * j)
    return outputs


def stitch_all(outputs, plans, lead: int = 1) -> tf.Tensor:
    """Weighted tile outputs ``(*L, c_0, ..., c_m, k_0, ..., k_m, K)`` of tiles on every axis,
    stitched: ``(*L, l_0, ..., l_m, K)``.

    Example:
        >>> from keras_unet.inference.plan import AxisPlan
        >>> plan = AxisPlan(4, 6, 2, 2, 0, 0, tf.ones([2]))
        >>> tiles = tf.ones((1, 2, 2, 2, 2, 1))  # 2x2 tiles of 2x2 pixels
        >>> stitch_all(tiles, [plan, plan]).shape
        TensorShape([1, 4, 4, 1])
    """
    count = len(plans)
    for j in reversed(range(count)):
        outputs = stitch_axis(outputs, plans[j].step, lead + j, lead + 2 * j + 1)
    return outputs


def accumulated_weights(plans) -> tf.Tensor:
    """The product of every axis's :func:`weight_sum`: what the accumulated outputs are
    divided by, ``(l_0, ..., l_m, 1)``.

    Example:
        >>> from keras_unet.inference.plan import AxisPlan
        >>> plan = AxisPlan(5, 4, 2, 2, 0, 0, tf.constant([0.5, 1.0, 1.0]))
        >>> accumulated_weights([plan, plan]).shape
        TensorShape([5, 5, 1])
    """
    total = None
    for axis, plan in enumerate(plans):
        shape = [1] * (len(plans) + 1)
        shape[axis] = -1
        factor = tf.reshape(weight_sum(plan), shape)
        total = factor if total is None else total * factor
    return total



def weight_sum(plan: AxisPlan) -> tf.Tensor:
    """Sum of the tile weights at every accumulator pixel of an axis (what to divide by).

    Example:
        >>> from keras_unet.inference.plan import AxisPlan
        >>> weight_sum(AxisPlan(5, 4, 2, 2, 0, 0, tf.constant([0.5, 1.0, 1.0]))).numpy().tolist()
        [0.5, 1.0, 1.5, 1.0, 1.0]
    """
    blocks = tf.tile(tf.reshape(tf.cast(plan.weights, tf.float32), [1, 1, -1, 1]),
                     tf.stack([1, plan.count, 1, 1]))
    return overlap_add(blocks, plan.step)[0, :, 0]
