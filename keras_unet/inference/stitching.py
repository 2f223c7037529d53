"""Tile outputs laid back together: weighted overlap-add along one axis, in TensorFlow ops.

Valid-padding outputs (weights 1, no overlap) simply sit side by side; same-padding outputs
are added where they overlap and divided by the summed ramp weights. The band engine
(:mod:`keras_unet.inference.engine`) and the served graph (:mod:`keras_unet.serving.graph`) both
stitch with these functions.
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


def weighted_outputs(outputs, rows: AxisPlan, cols: AxisPlan) -> tf.Tensor:
    """Tile outputs (N, h', w', K) cut to the kept pixels and multiplied by the blend weights.

    Example:
        >>> from keras_unet.inference.plan import AxisPlan
        >>> plan = AxisPlan(3, 8, 2, 2, 1, 1, tf.constant([0.5, 1.0, 0.5]))
        >>> weighted_outputs(tf.ones((1, 4, 4, 1)), plan, plan)[0, :, :, 0].numpy().tolist()
        [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]]
    """
    weights = (tf.reshape(tf.cast(rows.weights, tf.float32), [1, -1, 1, 1])
               * tf.reshape(tf.cast(cols.weights, tf.float32), [1, 1, -1, 1]))
    return tf.cast(outputs, tf.float32)[:, :rows.keep, :cols.keep] * weights


def stitch_columns(outputs, cols: AxisPlan) -> tf.Tensor:
    """Weighted outputs of rows of tiles (M, nx, kh, kw, K), added side by side: (M, kh, Lw, K).

    Example:
        >>> from keras_unet.inference.plan import AxisPlan
        >>> plan = AxisPlan(4, 6, 2, 2, 0, 0, tf.ones([2]))
        >>> outputs = tf.reshape(tf.range(8.0), (1, 2, 1, 2, 2))  # two 1x2 tiles, 2 classes
        >>> stitch_columns(outputs, plan)[0, 0, :, 0].numpy().tolist()
        [0.0, 2.0, 4.0, 6.0]
    """
    outputs = tf.convert_to_tensor(outputs, tf.float32)
    shape = tf.shape(outputs)
    rows_of_tiles, count, keep_h, keep_w, classes = (shape[i] for i in range(5))
    flat = tf.reshape(tf.transpose(outputs, [0, 2, 1, 3, 4]),
                      [rows_of_tiles * keep_h, count, keep_w, classes])
    stitched = overlap_add(flat, cols.step)
    return tf.reshape(stitched, [rows_of_tiles, keep_h, -1, classes])


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
