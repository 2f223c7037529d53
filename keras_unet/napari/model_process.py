"""TensorFlow in a process of its own beside napari's: where the widgets' jobs run.

TensorFlow's wheels carry a copy of LLVM and export its symbols; Mesa's OpenGL drivers (llvmpipe
on a virtual display, and Mesa's drivers on most Linux desktops) load the system's libLLVM. In
one process whichever loads second binds to the other's LLVM and crashes (in napari's first
``glClear`` when TensorFlow came first, in TensorFlow's start when OpenGL did; reported as
tensorflow/tensorflow#109933). napari draws with OpenGL, so the plugin never loads TensorFlow in
napari's process: the jobs of :mod:`keras_unet.napari.jobs` run in one long-lived child, ``python
-m keras_unet.napari.model_process`` (a fresh interpreter: no Qt, no OpenGL, and none of the
caller's ``__main__``), which keeps the models it opened between runs. Two local connections
join them (``multiprocessing.connection``, with a key): jobs go one way and their progress and
:class:`~keras_unet.napari.jobs.Outcome` come back on one, Cancel goes on the other. The caller
waits in napari's ``thread_worker``, which yields the progress. Jobs run one at a time; a child
that dies (killed for memory, say) is reported in one line and started again for the next job;
the child ends when napari does.
"""

from __future__ import annotations

import atexit
import itertools
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Generator
from multiprocessing.connection import Client, Connection, Listener

from keras_unet.napari.jobs import Outcome, Progress, attempt

POLL = 0.1
"""Seconds between looks at the child's messages (and at whether it is still alive)."""

KEY_VARIABLE = "KERAS_UNET_MODEL_PROCESS_KEY"
"""The environment variable that hands the connections' key to the child."""


class _JobCancel:
    """The child's side of Cancel for one job: the job ids Cancel was pressed for."""

    def __init__(self, cancels: Connection, cancelled: set[int], job_id: int):
        self._cancels, self._cancelled, self._job_id = cancels, cancelled, job_id

    def is_set(self) -> bool:
        while self._cancels.poll():
            self._cancelled.add(self._cancels.recv())
        return self._job_id in self._cancelled


def serve(jobs: Connection, cancels: Connection) -> None:
    """The child's loop: start TensorFlow quietly, then run each job that comes, sending back its
    progress and its outcome, until the caller closes the connection."""
    from keras_unet.cli.tensorflow_start import start_tensorflow

    start_tensorflow(verbose=bool(os.environ.get("UNET_DEBUG")))
    cancelled: set[int] = set()
    while True:
        try:
            job_id, job, args, kwargs = jobs.recv()
        except EOFError:
            return

        def report(progress: Progress, job_id: int = job_id) -> None:
            jobs.send((job_id, progress))

        jobs.send((job_id, attempt(job, *args, report=report,
                                   cancel=_JobCancel(cancels, cancelled, job_id), **kwargs)))


class ModelProcess:
    """The child process, started on first use, and the jobs sent to it one at a time.

    Example:
        >>> from keras_unet.napari.jobs import describe_model
        >>> process = ModelProcess()
        >>> steps = process.job(describe_model, "no-such-model.keras").run()
        >>> try:
        ...     next(steps)
        ... except StopIteration as end:
        ...     print(end.value.error)
        --model 'no-such-model.keras' does not exist.
        >>> process.stop()
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._child: subprocess.Popen | None = None
        self._jobs: Connection | None = None
        self._cancels: Connection | None = None
        atexit.register(self.stop)

    def start(self) -> None:
        """Starts the child (and TensorFlow in it) in the background, so the first job need
        not wait for it."""
        threading.Thread(target=self._start, name="keras_unet model process start",
                         daemon=True).start()

    def stop(self) -> None:
        """Ends the child (the next job starts another)."""
        child, self._child = self._child, None
        for connection in (self._jobs, self._cancels):
            if connection is not None:
                connection.close()
        if child is not None and child.poll() is None:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    def job(self, function: Callable, *args, **kwargs) -> Job:
        """A job that runs ``function(*args, report=..., cancel=..., **kwargs)`` in the child
        (``function`` and the arguments must pickle: module-level functions, paths, arrays)."""
        return Job(self, next(self._ids), function, args, kwargs)

    def _start(self) -> None:
        with self._lock:
            self._running()

    def _running(self) -> tuple[subprocess.Popen, Connection]:
        """The child, started if it is not running (called with the lock held)."""
        if self._child is None or self._child.poll() is not None:
            key = secrets.token_bytes(32)
            with Listener(family="AF_UNIX", authkey=key) as listener:
                self._child = subprocess.Popen(
                    [sys.executable, "-m", "keras_unet.napari.model_process", listener.address],
                    env={**os.environ, KEY_VARIABLE: key.hex()})
                self._jobs, self._cancels = listener.accept(), listener.accept()
        return self._child, self._jobs

    def _cancel(self, job_id: int) -> None:
        if self._cancels is not None and not self._cancels.closed:
            self._cancels.send(job_id)


class Job:
    """One job for the child: :meth:`run` is the generator napari's ``thread_worker`` runs."""

    def __init__(self, process: ModelProcess, job_id: int, function: Callable, args: tuple,
                 kwargs: dict):
        self.id = job_id
        self._process = process
        self._request = (job_id, function, args, kwargs)
        self.cancelled = False

    def cancel(self) -> None:
        """Asks the job to stop at its next step (or not to start, if it waits for another)."""
        self.cancelled = True
        self._process._cancel(self.id)

    def run(self) -> Generator[Progress, None, Outcome]:
        """Sends the job, yields its progress, returns its outcome. Closed early (napari's
        worker quit), it cancels the job."""
        finished = False
        try:
            with self._process._lock:
                if self.cancelled:
                    finished = True
                    return Outcome(cancelled=True)
                child, jobs = self._process._running()
                jobs.send(self._request)
                while True:
                    try:
                        if not jobs.poll(POLL):
                            if child.poll() is None:
                                continue
                            raise EOFError
                        job_id, message = jobs.recv()
                    except (EOFError, OSError):
                        self._process.stop()
                        finished = True
                        return Outcome(error=f"the model process stopped (exit code "
                                             f"{child.returncode}, out of memory?); the next run "
                                             "starts it again.")
                    if job_id != self.id:
                        continue  # from a job whose worker was closed before its end
                    if isinstance(message, Outcome):
                        finished = True
                        return message
                    yield message
        finally:
            if not finished:
                self.cancel()


MODEL_PROCESS = ModelProcess()
"""The one model process of a napari session, shared by the widgets."""


def main(address: str) -> None:
    """The child: connects to the caller at ``address`` and serves its jobs."""
    key = bytes.fromhex(os.environ.pop(KEY_VARIABLE))
    jobs = Client(address, family="AF_UNIX", authkey=key)
    cancels = Client(address, family="AF_UNIX", authkey=key)
    serve(jobs, cancels)


if __name__ == "__main__":
    main(sys.argv[1])
