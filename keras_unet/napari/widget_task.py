"""A widget's job: run in the model process, watched from napari's ``thread_worker``, with a
progress bar, Cancel, and the one-line notification of anything the user can fix.

The job runs in :data:`keras_unet.napari.model_process.MODEL_PROCESS`; a napari generator
``thread_worker`` waits for it off the GUI thread and yields its progress to the widget's bar and
status line. Its outcome comes back to the GUI thread, where the widget changes layers: only
then, and only for a job that finished, so a cancelled or failed job leaves no half layer. An
error the user can fix is shown as its one line, as ``unet`` prints it; a bug is shown with its
traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from magicgui.widgets import Container, Label, ProgressBar, PushButton
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QSizePolicy

from keras_unet.napari.jobs import Outcome, Progress
from keras_unet.napari.model_process import MODEL_PROCESS, Job


STATUS_LINES = 3
"""Lines a status label keeps room for: its messages wrap there instead of widening the dock."""


def wrapping(label: Label) -> Container:
    """``label`` across a widget's whole width, with room for :data:`STATUS_LINES` wrapped lines
    (a dock does not grow when a message gets longer)."""
    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    label.native.setMinimumHeight(label.native.fontMetrics().lineSpacing() * STATUS_LINES)
    return Container(widgets=[label], labels=False)


class JobFailed(RuntimeError):
    """A bug in a job, raised in the GUI thread with the job's traceback as its message, so that
    napari shows it."""


def run_job(job: Callable, *args, on_outcome: Callable[[Outcome], None], **kwargs) -> Job:
    """Runs ``job`` in the model process without a progress bar (opening a model, say);
    ``on_outcome`` gets its :class:`~keras_unet.napari.jobs.Outcome` on the GUI thread."""
    handle = MODEL_PROCESS.job(job, *args, **kwargs)
    create_worker(handle.run, _connect={"returned": on_outcome})
    return handle


class WidgetTask:
    """Runs one job at a time for a widget, with its Run and Cancel buttons, progress bar and
    status line.

    Args:
        run: the button that starts jobs (disabled while one runs).
        cancel: the Cancel button (enabled while one runs).
        bar: the progress bar.
        status: the label that says what the job is doing and how it ended.
        what: what the jobs are, for the notification of a cancelled one (``"Segmentation"``).
    """

    def __init__(self, run: PushButton, cancel: PushButton, bar: ProgressBar, status: Label,
                 what: str):
        self._run, self._cancel_button, self._bar, self._status = run, cancel, bar, status
        self._what = what
        self._job: Job | None = None
        self._on_result: Callable[[Any], None] | None = None
        cancel.enabled = False
        cancel.clicked.connect(self.cancel)

    @property
    def busy(self) -> bool:
        """Whether a job is running."""
        return self._job is not None

    def start(self, job: Callable, *args, on_result: Callable[[Any], None], **kwargs) -> None:
        """Starts ``job(*args, report=..., cancel=..., **kwargs)`` in the model process;
        ``on_result`` gets its result on the GUI thread if it finishes."""
        self._on_result = on_result
        self._job = MODEL_PROCESS.job(job, *args, **kwargs)
        self._run.enabled, self._cancel_button.enabled = False, True
        self._bar.value = 0
        self._status.value = "waiting for the model process..."
        create_worker(self._job.run, _connect={"yielded": self._show, "returned": self._returned,
                                                "errored": self._errored,
                                                "finished": self._finished})

    def cancel(self) -> None:
        """Asks the running job to stop at its next step."""
        if self._job is not None:
            self._job.cancel()
            self._status.value = "cancelling..."

    def _show(self, progress: Progress) -> None:
        if self._job is not None and not self._job.cancelled:
            self._bar.max = max(progress.total, 1)
            self._bar.value = min(progress.done, self._bar.max)
            self._status.value = progress.text

    def _returned(self, outcome: Outcome) -> None:
        if outcome.failure is not None:
            self._status.value = f"{self._what} failed: see the notification"
            raise JobFailed(outcome.failure)
        if outcome.error is not None:
            show_error(outcome.error)
            self._status.value = outcome.error
        elif outcome.cancelled:
            message = f"{self._what} cancelled: nothing was changed."
            show_info(message)
            self._status.value = message
        elif self._on_result is not None:
            self._on_result(outcome.result)

    def _errored(self, error: Exception) -> None:
        self._status.value = f"{self._what} failed ({type(error).__name__}): see the notification"

    def _finished(self) -> None:
        self._job = None
        self._run.enabled, self._cancel_button.enabled = True, False
