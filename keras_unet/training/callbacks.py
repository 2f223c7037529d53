"""Keras callbacks of a training run: throughput, validation image panels, atomic checkpoints,
and a NaN guard that says what to do.

Keras's own ``BackupAndRestore`` and ``TensorBoard`` do the rest; :func:`keras_unet.training.train`
assembles them all. Put :class:`Throughput` before ``TensorBoard`` in the callback list: it adds
``tiles_per_second`` to the epoch logs that TensorBoard, the progress bar and the history read.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_unet.errors import FaultError, InputError
from keras_unet.io.atomic import written_atomically
from keras_unet.visualize import PANEL_COLUMNS, validation_panel


class Throughput(keras.callbacks.Callback):
    """Adds ``tiles_per_second``, the epoch's training rate, to the epoch logs.

    The rate counts the training steps after the first of the epoch over the time from the end
    of the first to the end of the last, so neither validation nor the first step (which
    compiles the step function and fills the input pipeline) is counted. An epoch of one step
    is timed from the epoch's start.

    Args:
        global_batch_size: tiles per training step, summed over all replicas.

    Example:
        >>> callback = Throughput(8)
        >>> callback.on_epoch_begin(0)
        >>> callback.on_train_batch_end(0); callback.on_train_batch_end(1)
        >>> logs = {}
        >>> callback.on_epoch_end(0, logs)
        >>> logs["tiles_per_second"] > 0
        True
    """

    def __init__(self, global_batch_size: int):
        super().__init__()
        self.global_batch_size = int(global_batch_size)
        self._times: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._times = [time.perf_counter()]

    def on_train_batch_end(self, batch, logs=None):
        self._times.append(time.perf_counter())

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or len(self._times) < 2:
            return
        start = self._times[1] if len(self._times) > 2 else self._times[0]
        steps = len(self._times) - (2 if len(self._times) > 2 else 1)
        logs["tiles_per_second"] = steps * self.global_batch_size / max(
            self._times[-1] - start, 1e-9)


class ValidationPanel(keras.callbacks.Callback):
    """Writes :func:`validation_panel` pictures of fixed validation tiles to TensorBoard.

    At the end of every epoch the model predicts the same tiles and the panels go to the image
    tag ``validation_panel`` (step = epoch number) of an event file in ``log_dir``.

    Args:
        log_dir: folder of the event file.
        images: ``(N, T, T, C)`` validation tiles (volumes: ``(N, D, T, T, C)``, shown by
            the middle plane of their output).
        labels: ``(N, O, O)`` their labels.
        weights: ``(N, O, O)`` their weight maps.
        class_names: the names of the legend (default: the layout's defaults).

    Example:
        >>> import tempfile
        >>> import keras_unet
        >>> model = keras_unet.build_unet((None, None, 1), 2, filters=2, depth=2)
        >>> images = np.zeros((1, 44, 44, 1), "float32")
        >>> panel = ValidationPanel(tempfile.mkdtemp(), images, np.zeros((1, 4, 4), "int32"),
        ...                         np.ones((1, 4, 4), "float32"))
        >>> panel.set_model(model)
        >>> panel.on_epoch_end(0)
        >>> panel.on_train_end()
    """

    def __init__(self, log_dir: str | os.PathLike, images: np.ndarray, labels: np.ndarray,
                 weights: np.ndarray, class_names: Sequence[str] | None = None):
        super().__init__()
        self.class_names = None if class_names is None else tuple(class_names)
        self.log_dir = str(log_dir)
        self.images = np.asarray(images, np.float32)
        self.labels = np.asarray(labels)
        self.weights = np.asarray(weights, np.float32)
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        probabilities = keras.ops.convert_to_numpy(self.model(self.images, training=False))
        panel = validation_panel(self.images, self.labels, probabilities, self.weights,
                                 self.class_names)
        description = " | ".join(PANEL_COLUMNS)
        if self.images.ndim == 5:
            description += " (volumes: the middle plane of each tile's output)"
        with self._writer.as_default():
            tf.summary.image("validation_panel", panel, step=epoch, max_outputs=len(panel),
                             description=description)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class ObjectF1(keras.callbacks.Callback):
    """Adds ``val_object_f1``, object F1 at IoU 0.5 on whole validation images, to epoch logs.

    Each epoch the model predicts every validation image with
    :func:`keras_unet.predict_tiled`, :func:`keras_unet.instances.instance_labels` turns the
    probabilities into cells, and :func:`keras_unet.evaluation.matching_dataset` counts the
    matches over all images; put it before ``keras.callbacks.TensorBoard`` so that the value
    is logged there too (as ``epoch_object_f1`` of the validation run). Unlabelled pixels
    (partial annotations) are cut out of both the truth and the predicted cells.

    Args:
        samples: the validation samples (images with instance labels).

    Example:
        >>> import keras_unet
        >>> from keras_unet.data import synthetic_cells
        >>> callback = ObjectF1(synthetic_cells(1, size=48))
        >>> callback.set_model(keras_unet.build_unet((None, None, 1), 2, filters=2, depth=2))
        >>> logs = {}
        >>> callback.on_epoch_end(0, logs)
        >>> 0.0 <= logs["val_object_f1"] <= 1.0
        True
    """

    def __init__(self, samples):
        super().__init__()
        self.samples = list(samples)

    def on_epoch_end(self, epoch, logs=None):
        from keras_unet.evaluation.drivers import object_f1
        from keras_unet.inference.tiled import predict_tiled

        if logs is None:
            return
        probabilities = [predict_tiled(self.model, sample.image) for sample in self.samples]
        if not all(np.isfinite(p).all() for p in probabilities):  # diverged: NaNGuard reports
            logs["val_object_f1"] = float("nan")
            return
        logs["val_object_f1"] = object_f1([sample.labels for sample in self.samples],
                                          probabilities)


def save_model_atomically(model: keras.Model, path: str | os.PathLike) -> Path:
    """Saves a ``.keras`` file so that ``path`` always holds a complete model.

    The model is written to a temporary file in the same folder and moved over ``path`` with
    ``os.replace``, which is atomic on one file system: a process killed while saving leaves the
    previous file intact (and at worst a stray temporary file), never a half-written one.

    Example:
        >>> import tempfile
        >>> import keras_unet
        >>> model = keras_unet.build_unet((None, None, 1), 2, filters=2, depth=2)
        >>> path = save_model_atomically(model, Path(tempfile.mkdtemp()) / "last.keras")
        >>> sorted(p.name for p in path.parent.iterdir())
        ['last.keras']
    """
    path = Path(path)
    with written_atomically(path, overwrite=True) as temporary:  # keeps the .keras suffix
        model.save(temporary)
    return path


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Writes a text file through a temporary file and ``os.replace`` (see
    :func:`save_model_atomically`).

    Example:
        >>> import tempfile
        >>> path = write_text_atomically(Path(tempfile.mkdtemp()) / "a.json", "{}")
        >>> path.read_text()
        '{}'
    """
    path = Path(path)
    with written_atomically(path, overwrite=True) as temporary:
        temporary.write_text(text)
    return path




class ResumableBackup(keras.callbacks.BackupAndRestore):
    """Keras's ``BackupAndRestore`` (two weight copies), written through the one atomic writer
    and saying what to do when both are broken.

    Each copy is written under a temporary name and renamed when complete, so a full disk or a
    kill while saving leaves the previous copies whole (and a fault that names the file); a
    resume that finds both unreadable says which folder holds them and how to start over.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> ResumableBackup(folder, double_checkpoint=True).backup_dir == folder
        True
    """

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError) as error:  # h5py and Keras raise both for a broken file
            reason = " ".join(str(error).split())[:160]
            copies = ("both weight backups of the interrupted run are" if
                      os.path.exists(self._prev_weights_path) else
                      "the weight backup of the interrupted run is")
            run = os.path.dirname(os.path.normpath(self.backup_dir))
            raise FaultError(f"{self.backup_dir!r}: {copies} unreadable ({reason}); to start "
                             f"the run over, delete {run!r} or choose another --run-dir."
                             ) from None

    def _save_model(self):  # Keras's, through the one writer: temporary name, then rename
        weights, metadata = Path(self._weights_path), Path(self._training_metadata_path)
        weights.parent.mkdir(parents=True, exist_ok=True)
        if self.double_checkpoint:  # the previous complete copies become the .bkp ones
            for current, previous in ((weights, self._prev_weights_path),
                                      (metadata, self._prev_training_metadata_path)):
                if current.is_file():
                    with written_atomically(Path(previous), overwrite=True,
                                            option="the run's backup") as temporary:
                        shutil.copyfile(current, temporary)
        with written_atomically(weights, overwrite=True, option="the run's backup") as temporary:
            needed = 2 * sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in
                             self.model.variables + list(self.model.optimizer.variables))
            if shutil.disk_usage(weights.parent).free < needed:  # h5py may crash on a full disk
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.model.save_weights(temporary, overwrite=True)
        with written_atomically(metadata, overwrite=True, option="the run's backup") as temporary:
            temporary.write_text(json.dumps({"epoch": self._current_epoch,
                                             "batch": self._last_batch_seen}))


class AtomicCheckpoints(keras.callbacks.Callback):
    """Keeps ``last.keras`` (every epoch) and ``best.keras`` (best ``monitor``) in a folder.

    Both are written with :func:`save_model_atomically`. The best value so far, its epoch
    (counted from 1) and that epoch's logs are kept in ``best.json`` beside them, so a resumed
    run still only replaces ``best.keras`` with a better model. Epochs whose logs hold a NaN or
    infinite loss are not saved.

    Args:
        directory: folder of the checkpoints.
        monitor: the epoch log to rank models by (e.g. ``"val_loss"``, ``"val_iou"``); None
            (training without validation) makes every epoch the best, so best = last.
        mode: ``"max"`` if larger is better, ``"min"`` if smaller is.

    Example:
        >>> import tempfile
        >>> import keras_unet
        >>> folder = Path(tempfile.mkdtemp())
        >>> callback = AtomicCheckpoints(folder, monitor="val_loss", mode="min")
        >>> callback.set_model(keras_unet.build_unet((None, None, 1), 2, filters=2, depth=2))
        >>> callback.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.7})
        >>> callback.on_epoch_end(1, {"loss": 0.4, "val_loss": 0.8})
        >>> json.loads((folder / "best.json").read_text())
        {'monitor': 'val_loss', 'value': 0.7, 'epoch': 1, 'logs': {'loss': 0.5, 'val_loss': 0.7}}
        >>> sorted(p.name for p in folder.iterdir())
        ['best.json', 'best.keras', 'last.keras']
    """

    def __init__(self, directory: str | os.PathLike, monitor: str | None = "val_loss",
                 mode: str = "min"):
        super().__init__()
        if mode not in ("max", "min"):
            raise InputError(f"mode must be 'max' or 'min', got {mode!r}.")
        self.directory = Path(directory)
        self.monitor = monitor
        self.mode = mode
        self.last_path = self.directory / "last.keras"
        self.best_path = self.directory / "best.keras"
        self.state_path = self.directory / "best.json"

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not math.isfinite(float(logs.get("loss", 0.0))):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        save_model_atomically(self.model, self.last_path)
        if self.monitor is None:  # nothing to compare: the best is the last
            value = None
        else:
            value = logs.get(self.monitor)
            if value is None or not math.isfinite(float(value)):
                return
        best = self.best_value()
        if self.monitor is None or best is None or (
                value > best if self.mode == "max" else value < best):
            save_model_atomically(self.model, self.best_path)
            state = {"monitor": self.monitor, "value": None if value is None else float(value),
                     "epoch": epoch + 1,
                     "logs": {key: float(number) for key, number in logs.items()}}
            write_text_atomically(self.state_path, json.dumps(state))

    def best_state(self) -> dict | None:
        """``{"monitor", "value", "epoch", "logs"}`` of ``best.keras`` (None before the first)."""
        if not self.state_path.is_file():
            return None
        state = json.loads(self.state_path.read_text())
        return state if state.get("monitor") == self.monitor else None

    def best_value(self) -> float | None:
        """The best ``monitor`` value saved so far in this folder (None before the first)."""
        state = self.best_state()
        return None if state is None or state["value"] is None else float(state["value"])


class PatienceOnBest(keras.callbacks.Callback):
    """Early stopping: stops ``fit`` once ``patience`` epochs passed without a new best checkpoint.

    Keras's ``EarlyStopping`` keeps its best value and wait count in memory, so a resumed run
    would count afresh and restore only what that process saw. This one reads the best epoch
    from :class:`AtomicCheckpoints`' ``best.json`` (put it after them in the callback list), the
    record that survives an interruption, and ``best.keras`` holds the weights to restore.

    Args:
        checkpoints: the run's checkpoints callback.
        patience: epochs without improvement of its monitor before stopping (>= 1).

    Example:
        >>> import tempfile
        >>> import keras_unet
        >>> checkpoints = AtomicCheckpoints(tempfile.mkdtemp(), monitor="val_loss", mode="min")
        >>> stop = PatienceOnBest(checkpoints, patience=2)
        >>> model = keras_unet.build_unet((None, None, 1), 2, filters=2, depth=2)
        >>> for callback in (checkpoints, stop):
        ...     callback.set_model(model)
        >>> for epoch, value in enumerate([0.5, 0.4, 0.45, 0.41]):
        ...     checkpoints.on_epoch_end(epoch, {"loss": 1.0, "val_loss": value})
        ...     stop.on_epoch_end(epoch)
        >>> model.stop_training, stop.stopped_epoch, checkpoints.best_state()["epoch"]
        (True, 4, 2)
    """

    def __init__(self, checkpoints: AtomicCheckpoints, patience: int):
        super().__init__()
        if not isinstance(patience, int) or patience < 1:
            raise InputError(f"patience must be an integer >= 1, got {patience!r}.")
        self.checkpoints = checkpoints
        self.patience = patience
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        state = self.checkpoints.best_state()
        best_epoch = 0 if state is None else int(state["epoch"])
        if epoch + 1 - best_epoch >= self.patience:
            self.model.stop_training = True
            self.stopped_epoch = epoch + 1


ENCODER_LAYERS = ("enc", "bottleneck")
"""Name prefixes of the contracting path's and the bottleneck's layers in
:func:`keras_unet.build_unet` (``enc1_conv1``, ..., ``bottleneck_conv2``)."""


def encoder_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of the contracting path and the bottleneck of a :func:`keras_unet.build_unet`.

    Example:
        >>> import keras_unet
        >>> model = keras_unet.build_unet((None, None, 1), 2, filters=2, depth=2)
        >>> [layer.name for layer in encoder_layers(model) if layer.weights][-3:]
        ['enc2_conv2', 'bottleneck_conv1', 'bottleneck_conv2']
    """
    return [layer for layer in model.layers if layer.name.startswith(ENCODER_LAYERS)]


class FreezeEncoder(keras.callbacks.Callback):
    """Trains only the expanding path for the first ``epochs`` epochs, then the whole network.

    At the start of every epoch the encoder's layers (:func:`encoder_layers`) are made
    trainable or not as the epoch asks, and the training step is re-traced when that changes,
    so a resumed run is right whichever epoch it resumes at. The optimizer must already be built
    for all the variables (``model.optimizer.build(model.trainable_variables)`` before
    ``fit``), so that its state and a backup cover the encoder too.

    Args:
        epochs: epochs (counted from 0) during which the encoder is frozen.

    Example:
        >>> import keras_unet
        >>> model = keras_unet.build_unet((None, None, 1), 2, filters=2, depth=2)
        >>> freeze = FreezeEncoder(1)
        >>> freeze.set_model(model)
        >>> freeze.on_epoch_begin(0)
        >>> len(model.trainable_weights), len(model.weights)  # the 6 encoder convs frozen
        (14, 26)
        >>> freeze.on_epoch_begin(1)
        >>> len(model.trainable_weights)
        26
    """

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = int(epochs)

    def on_epoch_begin(self, epoch, logs=None):
        frozen = epoch < self.epochs
        layers = encoder_layers(self.model)
        if all(layer.trainable != frozen for layer in layers):
            return
        for layer in layers:
            layer.trainable = not frozen
        if getattr(self.model, "optimizer", None) is not None and self.model.compiled:
            self.model.make_train_function(force=True)


class NaNGuard(keras.callbacks.TerminateOnNaN):
    """``TerminateOnNaN`` that remembers where the loss diverged and says what to do.

    After ``fit`` returns, :attr:`message` is ``None`` if training went well, else a sentence
    naming the epoch and step and the usual remedies.

    Args:
        hint: advice appended to the message (e.g. which learning rate was used).

    Example:
        >>> guard = NaNGuard(hint="lower the learning rate.")
        >>> guard.set_model(keras.Sequential([keras.layers.Dense(1)]))
        >>> guard.on_epoch_begin(2)
        >>> guard.on_batch_end(7, {"loss": float("nan")})
        >>> guard.message
        'the loss became nan at epoch 3, step 8; training stopped: lower the learning rate.'
    """

    def __init__(self, hint: str = ""):
        super().__init__()
        self.hint = hint
        self.message: str | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        self.message = (f"the loss became {float(loss)} at epoch {self._epoch + 1}, step "
                        f"{batch + 1}; training stopped: {self.hint}")
        self.model.stop_training = True
