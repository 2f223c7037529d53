"""Training time: what counts, its record in the run folder, and the stop at a time limit.

Training time is the time of ``fit``'s training steps: from the start of each epoch to the end
of its last step. It includes waiting for tiles and a step function traced again (when
``freeze_encoder`` unfreezes the encoder), but not what follows each epoch's steps (validation,
object F1, checkpoints, the backup, the TensorBoard panels), nor what comes before training
(TensorFlow's start, reading the data, the measurement of the first steps, which also compiles
the step) or after it (the export and the choice of the cell settings).

:class:`TimeBudget` counts it and keeps the total at the end of every finished epoch in the
run's ``training_time.json`` (:class:`TrainingTime`, written atomically). A resumed run starts
after the last finished epoch, as its weights do, so it starts from that epoch's total and
trains only for what is left of the limit; the time of an interrupted epoch is not counted,
as its steps are trained again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import keras

from keras_unet.io.atomic import written_atomically


@dataclasses.dataclass
class TrainingTime:
    """The training time of a run, as kept in its folder (``training_time.json``).

    Attributes:
        steps_per_epoch: the steps of each epoch, chosen when the run started (fewer than the
            config's with a time limit: :mod:`keras_unet.training.step_timing`) and kept when
            it resumes; None when nobody chose (a plain ``model.fit``).
        epoch_ends: training seconds from the start of the run to the end of each finished
            epoch, in order.

    Example:
        >>> record = TrainingTime(50, [61.5, 120.0])
        >>> record.seconds_before(0), record.seconds_before(2), record.epochs_done
        (0.0, 120.0, 2)
    """

    steps_per_epoch: int | None = None
    epoch_ends: list[float] = dataclasses.field(default_factory=list)

    @property
    def epochs_done(self) -> int:
        """Finished epochs."""
        return len(self.epoch_ends)

    @property
    def seconds(self) -> float:
        """Training seconds of the finished epochs."""
        return self.epoch_ends[-1] if self.epoch_ends else 0.0

    def seconds_before(self, epoch: int) -> float:
        """Training seconds before epoch ``epoch`` (from 0) starts: the total at the end of the
        epoch before, or the last total recorded if the record has fewer epochs."""
        ends = self.epoch_ends[:epoch]
        return ends[-1] if ends else 0.0

    def end_epoch(self, epoch: int, seconds: float) -> None:
        """Records the total at the end of epoch ``epoch`` (from 0); later epochs recorded by an
        interrupted attempt are dropped, and a gap is filled with the total before it."""
        ends = self.epoch_ends[:epoch]
        ends += [ends[-1] if ends else 0.0] * (epoch - len(ends))
        self.epoch_ends = ends + [float(seconds)]

    def write(self, path: str | os.PathLike) -> Path:
        """Writes the record as JSON through a temporary file and a rename.

        Example:
            >>> import tempfile
            >>> path = TrainingTime(8, [1.5]).write(Path(tempfile.mkdtemp()) / "t.json")
            >>> TrainingTime.read(path)
            TrainingTime(steps_per_epoch=8, epoch_ends=[1.5])
        """
        path = Path(path)
        with written_atomically(path, overwrite=True) as temporary:
            temporary.write_text(json.dumps(dataclasses.asdict(self)))
        return path

    @classmethod
    def read(cls, path: str | os.PathLike) -> TrainingTime | None:
        """The record in ``path``, or None if there is none that parses.

        Example:
            >>> TrainingTime.read("no-such-file.json") is None
            True
        """
        try:
            fields = json.loads(Path(path).read_text())
            return cls(fields["steps_per_epoch"], [float(end) for end in fields["epoch_ends"]])
        except (OSError, ValueError, KeyError, TypeError):
            return None


class TimeBudget(keras.callbacks.Callback):
    """Counts the training time, records it after every epoch, and stops ``fit`` at a limit.

    The time of an epoch runs from its start to the end of its last step (see the module's
    docstring for what counts). When the total reaches ``limit_seconds`` after a step,
    ``model.stop_training`` is set: Keras then ends the epoch's steps, still validates the
    epoch and calls every callback's ``on_epoch_end`` (checkpoints, backup), and stops.
    Put it before ``keras.callbacks.BackupAndRestore`` in the callback list, so that the record
    of an epoch is written before its backup: a resumed run then never counts less time than
    its weights have trained for.

    Args:
        limit_seconds: the time limit; None counts without stopping.
        record: the run's record so far (a resumed run continues it); None starts a new one.
        path: where the record is written at the end of every epoch; None keeps it in memory.
        clock: a monotonic clock in seconds (for tests).

    Attributes:
        record: the :class:`TrainingTime`, updated at every epoch's end.
        stopped_at: ``(epoch, step)``, both from 1, of the step at which the limit stopped
            training; None if it did not.

    Example:
        >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        >>> ticks = iter([0.0, 4.0, 7.0, 10.0, 13.5])
        >>> budget = TimeBudget(limit_seconds=10.0, clock=lambda: next(ticks))
        >>> budget.set_model(model)
        >>> budget.on_epoch_begin(0)       # t = 0
        >>> budget.on_train_batch_end(0)   # t = 4
        >>> budget.on_epoch_end(0)         # validation time after t = 4 does not count
        >>> budget.on_epoch_begin(1)       # t = 7
        >>> budget.on_train_batch_end(0)   # t = 10: 4 + 3 s
        >>> budget.training_seconds, budget.stopped_at
        (7.0, None)
        >>> budget.on_train_batch_end(1)   # t = 13.5: 10.5 s, over the limit
        >>> budget.training_seconds, budget.stopped_at, model.stop_training
        (10.5, (2, 2), True)
    """

    def __init__(self, limit_seconds: float | None = None, record: TrainingTime | None = None,
                 path: str | os.PathLike | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        super().__init__()
        self.limit_seconds = limit_seconds
        self.record = record if record is not None else TrainingTime()
        self.path = None if path is None else Path(path)
        self.clock = clock
        self.stopped_at: tuple[int, int] | None = None
        self._epoch: int | None = None
        self._before = 0.0
        self._start = 0.0
        self._last = 0.0

    @property
    def training_seconds(self) -> float:
        """Training seconds so far: the finished epochs and the steps of the running one."""
        if self._epoch is None:
            return self.record.seconds
        return self._before + self._last - self._start

    @property
    def seconds_left(self) -> float | None:
        """What is left of the limit (None without a limit)."""
        if self.limit_seconds is None:
            return None
        return max(0.0, self.limit_seconds - self.training_seconds)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._before = self.record.seconds_before(epoch)
        self._start = self._last = self.clock()
        if self.seconds_left == 0.0:  # resumed after the limit: Keras stops after one step
            self._stop(epoch, 1)

    def on_train_batch_end(self, batch, logs=None):
        self._last = self.clock()
        if self.seconds_left == 0.0 and self.stopped_at is None:
            self._stop(self._epoch, batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        self.record.end_epoch(epoch, self.training_seconds)
        self._epoch = None
        if self.path is not None:
            self.record.write(self.path)

    def _stop(self, epoch: int, step: int) -> None:
        self.model.stop_training = True
        self.stopped_at = (epoch + 1, step)
