"""The progress of a training run as one line a person reads: steps, loss, object F1, time left.

``unet train`` shows it instead of Keras's progress bar: on a terminal one line for the whole run,
rewritten in place as the steps go; elsewhere (CI logs, a file) one line per epoch.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

import keras

from keras_unet.training.time_budget import TimeBudget

REDRAW_SECONDS = 0.5
"""Least time between two redraws of the line on a terminal."""

SCORES = (("val_object_f1", "val object F1"), ("val_iou", "val IoU"))
"""The validation score shown, by epoch log: the first one the run logs."""


def format_duration(seconds: float) -> str:
    """A duration as people say it: ``45 s``, ``3 min 20 s``, ``5 min``, ``1 h 5 min``.

    Example:
        >>> [format_duration(s) for s in (3.4, 200, 300, 3900, 7200)]
        ['3 s', '3 min 20 s', '5 min', '1 h 5 min', '2 h']
    """
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def progress_text(step: int, total_steps: int, epoch: int, epochs: int, *,
                  loss: float | None = None, score: tuple[str, float] | None = None,
                  seconds_left: float | None = None, limit_seconds: float | None = None) -> str:
    """The progress line: steps of the total, epoch, loss, last validation score, time left.

    Args:
        step: steps done (over the whole run, a resumed one included).
        total_steps: steps of the whole run.
        epoch: the epoch running or just done, from 1.
        epochs: epochs of the run.
        loss: the running training loss of the epoch.
        score: ``(name, value)`` of the last epoch's validation score, e.g. object F1.
        seconds_left: estimated training time left; None: not known yet.
        limit_seconds: the time limit, shown beside the time left.

    Example:
        >>> progress_text(812, 1800, 7, 15, loss=0.23104, score=("val object F1", 0.8743),
        ...               seconds_left=130, limit_seconds=300)
        'step 812/1800, epoch 7/15, loss 0.2310, val object F1 0.874, 2 min 10 s left of 5 min'
        >>> progress_text(1, 40, 1, 2)
        'step 1/40, epoch 1/2'
    """
    parts = [f"step {step}/{total_steps}", f"epoch {epoch}/{epochs}"]
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    if score is not None:
        parts.append(f"{score[0]} {score[1]:.3f}")
    if seconds_left is not None:
        limit = "" if limit_seconds is None else f" of {format_duration(limit_seconds)}"
        parts.append(f"{format_duration(seconds_left)} left{limit}")
    return ", ".join(parts)


class ProgressLine(keras.callbacks.Callback):
    """Shows :func:`progress_text` for a whole run: in place on a terminal, else once per epoch.

    In place, the line is rewritten after a step at most every :data:`REDRAW_SECONDS` and at
    every epoch's end, cut to the terminal's width, and ends with a newline when training
    ends. Otherwise a line is written at each epoch's end only. The time left is the steps left
    at the speed of this run's steps so far, or what is left of the time limit if that is less.
    Put it last in the callback list, so that the epoch's validation scores (``val_object_f1``
    of :class:`~keras_unet.training.callbacks.ObjectF1`) are in the logs it reads.

    Args:
        epochs: epochs of the run.
        steps_per_epoch: steps of each epoch.
        budget: the run's :class:`~keras_unet.training.time_budget.TimeBudget` (training time,
            limit); put it before this callback.
        in_place: rewrite one line (a terminal) instead of writing one line per epoch.
        stream: where to write (default: ``sys.stdout`` when training starts).
        prefix: put before the line.

    Example:
        >>> import io
        >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        >>> model.compile(optimizer="adam", loss="mse")
        >>> model.optimizer.build(model.trainable_variables)
        >>> budget, out = TimeBudget(), io.StringIO()
        >>> progress = ProgressLine(2, 5, budget, in_place=False, stream=out)
        >>> for callback in (budget, progress):
        ...     callback.set_model(model)
        >>> progress.on_train_begin()
        >>> budget.on_epoch_begin(0); progress.on_epoch_begin(0)
        >>> progress.on_train_batch_end(0, {"loss": 0.5})
        >>> budget.on_epoch_end(0); progress.on_epoch_end(0, {"loss": 0.5, "val_iou": 0.75})
        >>> out.getvalue()
        'step 0/10, epoch 1/2, loss 0.5000, val IoU 0.750\\n'
    """

    def __init__(self, epochs: int, steps_per_epoch: int, budget: TimeBudget, *,
                 in_place: bool, stream: TextIO | None = None, prefix: str = ""):
        super().__init__()
        self.epochs = int(epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.budget = budget
        self.in_place = in_place
        self.stream = stream
        self.prefix = prefix
        self._out: TextIO = sys.stdout
        self._epoch = 0
        self._loss: float | None = None
        self._score: tuple[str, float] | None = None
        self._first: tuple[int, float] | None = None
        self._drawn = 0.0
        self._width = 0

    def on_train_begin(self, logs=None):
        self._out = self.stream if self.stream is not None else sys.stdout
        self._first = None
        self._width = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._first is None:  # after BackupAndRestore: the resumed step counter
            self._first = (self._step(), self.budget.training_seconds)

    def on_train_batch_end(self, batch, logs=None):
        if logs and "loss" in logs:
            self._loss = float(logs["loss"])
        if self.in_place and time.monotonic() - self._drawn >= REDRAW_SECONDS:
            self._draw()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if "loss" in logs:
            self._loss = float(logs["loss"])
        self._score = next(((name, float(logs[key])) for key, name in SCORES if key in logs),
                           self._score)
        if self.in_place:
            self._draw()
        else:
            self._out.write(self.prefix + self._text() + "\n")
            self._out.flush()

    def on_train_end(self, logs=None):
        if self.in_place and self._width:
            self._out.write("\n")
            self._out.flush()

    def _step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def _text(self) -> str:
        step = self._step()
        total = self.epochs * self.steps_per_epoch
        return progress_text(step, total, self._epoch + 1, self.epochs, loss=self._loss,
                             score=self._score, seconds_left=self._seconds_left(step, total),
                             limit_seconds=self.budget.limit_seconds)

    def _seconds_left(self, step: int, total: int) -> float | None:
        """Steps left at this run's speed so far, capped by what is left of the limit."""
        first_step, first_seconds = self._first or (step, 0.0)
        if step <= first_step:
            return self.budget.seconds_left
        per_step = (self.budget.training_seconds - first_seconds) / (step - first_step)
        by_steps = max(0, total - step) * per_step
        left = self.budget.seconds_left
        return by_steps if left is None else min(by_steps, left)

    def _draw(self) -> None:
        """Rewrites the line, cut to the terminal's width: a wrapped line cannot be rewritten."""
        text = (self.prefix + self._text())[:shutil.get_terminal_size().columns - 1]
        self._out.write("\r" + text.ljust(self._width))
        self._out.flush()
        self._width = len(text)
        self._drawn = time.monotonic()
