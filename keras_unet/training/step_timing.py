"""How long a training step takes on this machine, and the epoch length that fits a time limit.

``unet train`` times a few steps before training (:func:`measure_seconds_per_step`), says
how long the run should take, and with a time limit shortens the epochs so that they spread
over it (:func:`plan_steps_per_epoch`): the checkpoints, the validation and the panels then
come at fractions of the limit, not of a step count the machine may never reach.
"""

from __future__ import annotations

import math
import time

import keras
import tensorflow as tf

from keras_unet.errors import InputError

WARMUP_STEPS = 4
"""Steps run before the timed ones: the first traces and compiles the step function, the next
ones are slower too (the input pipeline fills, oneDNN prepares its kernels)."""

MEASURED_STEPS = 5
"""Steps timed after the warm-up ones."""


class _StepClock(keras.callbacks.Callback):
    """Keeps the time at the end of every training step."""

    def __init__(self):
        super().__init__()
        self.ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def measure_seconds_per_step(model: keras.Model, dataset: tf.data.Dataset,
                             steps: int = MEASURED_STEPS, warmup: int = WARMUP_STEPS) -> float:
    """Seconds per training step of a compiled model, measured and then undone.

    Runs ``warmup + steps`` training steps with ``model.fit`` on ``dataset`` and times the
    last ``steps`` of them: the first traces and compiles the step function (the next ``fit``
    reuses it, so the measurement costs only the other steps), and the first few are slower
    than the rest of a run. The model's and the optimizer's variables (weights, optimizer
    moments, step counter, random seeds) are then put back as they were, so the measurement
    does not train the model.

    Args:
        model: a built and compiled model.
        dataset: the training batches (an endless ``tf.data.Dataset``, as ``fit`` gets it).
        steps: steps timed (>= 1).
        warmup: steps run before them (>= 1: the first compiles).

    Returns:
        The mean time of the timed steps, in seconds.

    Example:
        >>> import keras_unet
        >>> from keras_unet.data import make_dataset, synthetic_cells
        >>> model = keras_unet.build_unet((None, None, 1), 2, filters=2, depth=2)
        >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        >>> tiles = make_dataset(synthetic_cells(1), tile_size=92, batch_size=2, depth=2)
        >>> seconds = measure_seconds_per_step(model, tiles, steps=2, warmup=1)
        >>> seconds > 0, int(model.optimizer.iterations)  # the step counter is put back
        (True, 0)
    """
    if steps < 1 or warmup < 1:
        raise InputError(f"steps and warmup must be >= 1, got {steps} and {warmup}.")
    if not model.built:
        raise InputError("measure_seconds_per_step needs a built model: its weights are put back.")
    if not model.optimizer.built:  # its moments must exist to be put back
        model.optimizer.build(model.trainable_variables)
    variables = list(model.variables) + list(model.optimizer.variables)
    saved = [variable.numpy() for variable in variables]
    clock = _StepClock()
    try:
        model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, callbacks=[clock],
                  verbose=0, shuffle=False)
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)
    return (clock.ends[-1] - clock.ends[warmup - 1]) / steps


def plan_steps_per_epoch(limit_seconds: float | None, epochs: int, steps_per_epoch: int,
                         seconds_per_step: float) -> int:
    """Steps per epoch so that ``epochs`` epochs fill a time limit (at most ``steps_per_epoch``).

    Without a limit the epochs keep ``steps_per_epoch``. With one, each epoch gets an equal share
    of it, ``ceil(limit / (epochs * seconds_per_step))`` steps (at least one): rounded up, so
    that the limit, rather than an early end of the epochs, ends a run whose speed was
    measured right, and the last epoch is cut short by at most a step's worth of its share. An
    epoch never has more steps than ``steps_per_epoch``: on a machine fast enough for all
    ``epochs * steps_per_epoch`` steps the run ends before the limit.

    Example:
        >>> plan_steps_per_epoch(300.0, 15, 120, 0.4)  # 2 min of steps per 5 min: shortened
        50
        >>> plan_steps_per_epoch(300.0, 15, 120, 0.05), plan_steps_per_epoch(None, 15, 120, 0.4)
        (120, 120)
    """
    if limit_seconds is None:
        return steps_per_epoch
    fitting = math.ceil(limit_seconds / (epochs * max(seconds_per_step, 1e-9)) - 1e-9)
    return max(1, min(steps_per_epoch, fitting))
