"""The Keras callback behind the fine-tune widget's live loss and its Cancel button.

Passed to :func:`keras_unet.training.train` through its ``callbacks`` argument, it reports the
loss after every training step and raises :class:`~keras_unet.napari.jobs.Cancelled` at the end
of the step during which Cancel was pressed, which ends ``model.fit`` and the run there.
"""

from __future__ import annotations

import threading

import keras

from keras_unet.napari.jobs import Progress, Report, check_cancelled


class StepReadout(keras.callbacks.Callback):
    """Reports each training step's loss; stops training once ``cancel`` is set.

    Attributes:
        losses: the loss after each step so far.

    Example:
        >>> seen = []
        >>> readout = StepReadout(seen.append, threading.Event(), total=2)
        >>> readout.on_train_batch_end(0, {"loss": 0.5})
        >>> seen, readout.losses
        ([Progress(done=1, total=2, text='step 1 of 2: loss 0.5000')], [0.5])
    """

    def __init__(self, report: Report, cancel: threading.Event | None, total: int):
        super().__init__()
        self._report = report
        self._cancel = cancel
        self._total = total
        self.losses: list[float] = []

    def on_train_batch_end(self, batch, logs=None) -> None:
        check_cancelled(self._cancel)
        loss = float((logs or {}).get("loss", float("nan")))
        self.losses.append(loss)
        step = len(self.losses)
        self._report(Progress(step, self._total, f"step {step} of {self._total}: loss "
                                                 f"{loss:.4f}"))
