"""Cosine decay of the learning rate over the steps or a time limit, whichever runs out first.

Keras's ``CosineDecay`` is a function of the step count; with a time limit the run may end long
before the last step, at a rate far from zero. Here the decay follows the run's progress

    p = max(step / total_steps, training_seconds / limit_seconds)

so the rate reaches zero when the steps or the time run out, whichever comes first; without a
limit it is Keras's ``CosineDecay`` (``alpha=0``). A callback sets the optimizer's rate before
every step: the optimizer keeps a plain number, so a saved model loads in any Keras without this
module, and a resumed run continues the same curve from the restored step counter and the
recorded training time (:mod:`keras_unet.training.time_budget`).
"""

from __future__ import annotations

import math

import keras

from keras_unet.training.time_budget import TimeBudget


def run_progress(step: int, total_steps: int, training_seconds: float = 0.0,
                 limit_seconds: float | None = None) -> float:
    """How far a run is, from 0 to 1: by its steps or by its time limit, whichever is further.

    Example:
        >>> run_progress(100, 1800), run_progress(100, 1800, 150.0, 300.0)
        (0.05555555555555555, 0.5)
        >>> run_progress(1800, 1800, 10.0, 300.0)
        1.0
    """
    progress = step / total_steps
    if limit_seconds is not None:
        progress = max(progress, training_seconds / limit_seconds)
    return min(1.0, max(0.0, progress))


def cosine_decay(initial_learning_rate: float, progress: float) -> float:
    """The cosine-decayed rate ``initial * (1 + cos(pi * progress)) / 2`` (progress in [0, 1]).

    Example:
        >>> cosine_decay(0.001, 0.0), cosine_decay(0.001, 0.5), cosine_decay(0.001, 1.0)
        (0.001, 0.0005, 0.0)
    """
    return initial_learning_rate * (1.0 + math.cos(math.pi * progress)) / 2.0


class CosineDecayOverBudget(keras.callbacks.Callback):
    """Sets the optimizer's learning rate to the cosine decay of :func:`run_progress`.

    The rate of each step is ``cosine_decay(initial, run_progress(step, total_steps,
    training_seconds, limit))`` with ``step`` the optimizer's step counter before it: set at
    the start of each epoch (after ``BackupAndRestore`` restored the counter; put this callback
    after it) and after every step. Without a budget, or with a budget without a limit, these
    are exactly the rates of ``keras.optimizers.schedules.CosineDecay(initial, total_steps)``.

    Args:
        initial_learning_rate: the rate at the start.
        total_steps: the steps the run would take without a limit.
        budget: the run's :class:`~keras_unet.training.time_budget.TimeBudget` (its training time
            and limit); put it before this callback. None: the steps alone.

    Example:
        >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        >>> model.compile(optimizer=keras.optimizers.Adam(0.001), loss="mse")
        >>> model.optimizer.build(model.trainable_variables)
        >>> ticks = iter([0.0, 30.0])  # the first step takes half the limit
        >>> budget = TimeBudget(limit_seconds=60.0, clock=lambda: next(ticks))
        >>> decay = CosineDecayOverBudget(0.001, total_steps=1000, budget=budget)
        >>> for callback in (budget, decay):
        ...     callback.set_model(model)
        >>> budget.on_epoch_begin(0); decay.on_epoch_begin(0)
        >>> float(model.optimizer.learning_rate)
        0.001
        >>> budget.on_train_batch_end(0); decay.on_train_batch_end(0)
        >>> round(float(model.optimizer.learning_rate), 6)  # half, at 0 of 1000 steps
        0.0005
    """

    def __init__(self, initial_learning_rate: float, total_steps: int,
                 budget: TimeBudget | None = None):
        super().__init__()
        self.initial_learning_rate = float(initial_learning_rate)
        self.total_steps = int(total_steps)
        self.budget = budget

    def rate(self) -> float:
        """The rate of the next step."""
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if self.budget is None:
            return cosine_decay(self.initial_learning_rate, run_progress(step, self.total_steps))
        return cosine_decay(self.initial_learning_rate, run_progress(
            step, self.total_steps, self.budget.training_seconds, self.budget.limit_seconds))

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate = self.rate()

    def on_train_batch_end(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.rate()
