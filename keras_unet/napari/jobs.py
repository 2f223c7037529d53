"""The work behind the widgets, one library call each, run in the model process.

:func:`describe_model` opens a model and says what it is. :func:`segment` is ``unet predict
--instances`` on a layer: ``network.predict`` then
:func:`keras_unet.instances.instance_labels` with the cell settings (or, for a model of classes,
:func:`keras_unet.class_layout.predicted_classes`), plane by plane; a lazy or multiscale layer
goes through the block-wise path of ``unet predict`` on a zarr input
(:func:`keras_unet.inference.blockwise.predict_array`,
:func:`keras_unet.instances.blockwise.blockwise_instance_labels`). :func:`finetune` is ``unet
train --init``: it writes the training pairs as ``images/`` + ``masks/`` and calls
:func:`keras_unet.training.train` on them, starting from the current model.

A job takes model paths and picklable data, reports :class:`Progress` through a ``report``
callable and stops with :class:`Cancelled` at its next step once its ``cancel`` event is set;
:func:`attempt` turns how it ended into an :class:`Outcome` that can cross processes. It knows
nothing of napari or Qt, so a script gets the same result as the widget. TensorFlow loads on the
first call, not on import: the widgets import this module in napari's process, and run the jobs
in :mod:`keras_unet.napari.model_process`.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_unet.errors import InputError, UserError, os_error_line

STEPS = 200
"""Training steps of a fine-tune, the widget's default: a few minutes on a laptop CPU."""

MODELS_KEPT = 2
"""Models kept open by :func:`open_model`: the current one and the one fine-tuned from it."""

_models: dict[tuple[str, int], Any] = {}
_models_lock = threading.Lock()


class Cancelled(Exception):
    """The person pressed Cancel: the job stopped and leaves nothing behind."""


@dataclasses.dataclass(frozen=True)
class Progress:
    """How far a job is: ``done`` of ``total`` steps, and what it is doing, in words.

    Example:
        >>> Progress(3, 200, "step 3/200: loss 0.41").fraction
        0.015
    """

    done: int
    total: int
    text: str

    @property
    def fraction(self) -> float:
        """``done / total``, between 0 and 1."""
        return min(1.0, self.done / self.total) if self.total else 0.0


Report = Callable[[Progress], None]


def _quiet(progress: Progress) -> None:
    """The ``report`` of a job nobody watches."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a job ended, in a form that crosses processes: its result, the one-line message of an
    error the user can fix, cancelled, or the traceback of a bug.

    Example:
        >>> attempt(int, "12"), attempt(open_model, "no-such.keras").error
        (Outcome(result=12, error=None, cancelled=False, failure=None), "--model 'no-such.keras' does not exist.")
    """  # noqa: E501

    result: Any = None
    error: str | None = None
    cancelled: bool = False
    failure: str | None = None


def attempt(job: Callable, *args, **kwargs) -> Outcome:
    """Calls ``job(*args, **kwargs)`` and says how it ended (never raises but for KeyboardInterrupt
    and the like): a :class:`keras_unet.errors.UserError`, or an operating-system error on a named
    file, is its one line, as ``unet`` prints it; anything else a bug, with its traceback."""
    try:
        return Outcome(job(*args, **kwargs))
    except Cancelled:
        return Outcome(cancelled=True)
    except UserError as error:
        return Outcome(error=str(error))
    except OSError as error:
        line = os_error_line(error)
        if line is None:
            return Outcome(failure=traceback.format_exc())
        return Outcome(error=line)
    except Exception:  # a bug: its traceback goes to the user's notification
        return Outcome(failure=traceback.format_exc())


def check_cancelled(cancel: threading.Event | None) -> None:
    """Raises :class:`Cancelled` if ``cancel`` is set: the point where a job may stop.

    Example:
        >>> event = threading.Event(); event.set()
        >>> check_cancelled(event)
        Traceback (most recent call last):
        ...
        keras_unet.napari.jobs.Cancelled
    """
    if cancel is not None and cancel.is_set():
        raise Cancelled


def model_path(path: str | Path) -> Path:
    """The model a chosen file stands for: a SavedModel is chosen by its ``saved_model.pb``.

    Example:
        >>> model_path("export/1/saved_model.pb"), model_path("cells.keras")
        (PosixPath('export/1'), PosixPath('cells.keras'))
    """
    path = Path(path)
    return path.parent if path.name == "saved_model.pb" else path


def open_model(path: str | Path):
    """:func:`keras_unet.inference.load_network` of ``path``, kept open while the file is
    unchanged (the last :data:`MODELS_KEPT` models), so a second run does not load it again.

    Raises:
        FileNotFoundError, ValueError: the loader's one-line messages, as ``unet predict``
            prints them.

    Example:
        >>> open_model("no-such-model.keras")
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputNotFoundError: --model 'no-such-model.keras' does not exist.
    """
    from keras_unet.inference.loading import load_network

    path = model_path(path)
    key = (str(path.resolve()), path.stat().st_mtime_ns if path.exists() else -1)
    with _models_lock:
        if key not in _models:
            network = load_network(path)
            while len(_models) >= MODELS_KEPT:
                del _models[next(iter(_models))]
            _models[key] = network
        return _models[key]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What an open model is, for a widget in another process.

    Attributes:
        path: the model (a SavedModel's folder).
        kind: ``"keras"``, ``"savedmodel"``, ``"onnx"`` or ``"bioimageio"``.
        layout: its classes (a :class:`keras_unet.class_layout.ClassLayout`); None for a
            foreign SavedModel, which does not say.
        cells: the cell settings it carries (:class:`keras_unet.instances.settings.CellSettings`).
        notes: one-line notes to show (what a foreign SavedModel is assumed to do).
        ndim: 3 for a 3D U-Net, which segments a stack layer as volumes.
    """

    path: Path
    kind: str
    layout: Any
    cells: Any
    notes: tuple[str, ...]
    ndim: int = 2

    def describe(self) -> str:
        """One line: the file, its kind, classes and cell settings."""
        if self.layout is None:
            return f"{self.path.name}: a {self.kind} that does not name its classes"
        what = (f"{self.path.name}: {self.kind}{', 3D U-Net' if self.ndim == 3 else ''}, "
                f"{self.layout.num_classes} "
                f"{self.layout.labels} classes ({', '.join(self.layout.class_names)})")
        return what + (f"; cells {self.cells.describe()}" if self.layout.cells else "")


def describe_model(path: str | Path, report: Report = _quiet,
                   cancel: threading.Event | None = None) -> ModelInfo:
    """Opens a model (:func:`open_model`) and says what it is.

    Example:
        >>> import tempfile
        >>> from keras_unet import build_unet
        >>> path = Path(tempfile.mkdtemp()) / "unet.keras"
        >>> build_unet((None, None, 1), 3, filters=4, depth=2).save(path)
        >>> describe_model(path).describe()
        'unet.keras: keras, 3 instances classes (background, cell, border); cells method auto, min_size 10 (from the defaults)'
    """  # noqa: E501
    network = open_model(path)
    return ModelInfo(network.path, network.kind, network.layout, network.cells, network.notes,
                     network.ndim)


@dataclasses.dataclass(frozen=True)
class Segmentation:
    """What :func:`segment` found in an image layer.

    Attributes:
        labels: one label per cell (``kind == "cells"``, 0 background) or the class of each
            pixel (``"classes"``), with the layer's stack axes.
        kind: ``"cells"`` or ``"classes"``.
        class_names: what each class is, as the model names them.
        foreground: the probability of not being background, if asked for.
        cells: the cell settings that made the cells (None for classes).
    """

    labels: np.ndarray
    kind: str
    class_names: tuple[str, ...]
    foreground: np.ndarray | None
    cells: Any


def segment(model: str | Path, image, *, tta: bool = False, cells=None,
            foreground: bool = False, report: Report = _quiet,
            cancel: threading.Event | None = None) -> Segmentation:
    """Cells (or classes) of an image layer's every plane, as ``unet predict --instances``.

    Args:
        model: the model's path (opened by :func:`open_model`, once).
        image: the layer as :func:`keras_unet.napari.layer_data.image_input` reads it.
        tta: average the 8 flips/rotations (``--tta``).
        cells: a :class:`keras_unet.instances.settings.CellSettings`; default: the model's.
        foreground: also return the foreground probability.
        report, cancel: progress after each step; stop at the next step once set.

    Raises:
        ValueError: what ``unet predict`` refuses (an image the model cannot take), in one line.
        Cancelled: if ``cancel`` was set.

    Example:
        >>> import tempfile
        >>> from types import SimpleNamespace
        >>> from keras_unet import build_unet
        >>> from keras_unet.napari.layer_data import image_input
        >>> path = Path(tempfile.mkdtemp()) / "unet.keras"
        >>> build_unet((None, None, 1), 2, filters=4, depth=2).save(path)
        >>> layer = SimpleNamespace(name="a", data=np.zeros((2, 30, 40), "uint8"),
        ...                         multiscale=False, rgb=False, scale=(1, 1, 1),
        ...                         translate=(0, 0, 0))
        >>> found = segment(path, image_input(layer), foreground=True)
        >>> found.kind, found.labels.shape, found.foreground.shape
        ('cells', (2, 30, 40), (2, 30, 40))

    A 3D U-Net takes the layer's last three axes as a volume (z, y, x), as ``unet predict``
    takes a TIFF stack.
    """
    from keras_unet.class_layout import ClassLayout, predicted_classes

    network = open_model(model)
    cells = network.cells if cells is None else cells
    if network.ndim == 3:
        unit, outer, parts, predict, to_cells = _volume_job(network, image, tta, cells)
    else:
        if image.lazy and network.tiles is None:
            raise InputError(f"--model {str(network.path)!r} is a SavedModel; a lazy or "
                             "multiscale layer is predicted block by block and needs the "
                             ".keras, .onnx or bioimage.io model.")
        unit, outer, parts = "plane", image.stack_shape, image.planes()

        def predict(plane):
            return _probabilities(network, image, plane, tta)

        def to_cells(probabilities):
            return _cells(probabilities, cells, image.lazy)
    count_of = int(np.prod(outer, dtype=np.int64))
    total, labels, fg, layout = 2 * count_of, None, None, network.layout
    for count, (index, part) in enumerate(parts):
        where = f"{unit} {count + 1} of {count_of} of " if outer else ""
        check_cancelled(cancel)
        report(Progress(2 * count, total, f"predicting {where}{image.name!r}"))
        probabilities = predict(part)
        layout = layout or ClassLayout.of(probabilities.shape[-1])  # a foreign SavedModel
        check_cancelled(cancel)
        report(Progress(2 * count + 1, total, f"{'cells' if layout.cells else 'classes'} of "
                                              f"{where}{image.name!r}"))
        found = to_cells(probabilities) if layout.cells else predicted_classes(probabilities)
        if labels is None:
            labels = np.zeros(image.labels_shape, found.dtype)
            fg = np.zeros(image.labels_shape, np.float32) if foreground else None
        labels[index] = found
        if fg is not None:
            fg[index] = 1.0 - probabilities[..., 0]
    report(Progress(total, total, f"segmented {image.name!r}"))
    return Segmentation(labels, "cells" if layout.cells else "classes", layout.class_names, fg,
                        cells if layout.cells else None)


def _volume_job(network, image, tta: bool, cells) -> tuple:
    """How a 3D U-Net segments a stack layer: its last three axes are a volume (z, y, x), as
    ``unet predict`` takes a TIFF stack, with distances in the layer's scale where it is set,
    else the model's voxel size. ``(unit, outer axes, (index, volume) parts, predict, cells)``."""
    from keras_unet.instances.labels import instance_labels

    if image.rgb or len(image.labels_shape) < 3:
        raise InputError(f"image {image.name!r} has shape {image.labels_shape}, but --model "
                         f"{str(network.path)!r} is a 3D U-Net: it takes a stack of planes "
                         "(z, y, x).")
    if image.lazy:
        raise InputError(f"image {image.name!r} is lazy or multiscale; a 3D U-Net predicts it "
                         "box by box with unet predict --input STORE.ome.zarr --instances.")
    scale = image.scale[-3:]
    spacing = scale if any(s != 1.0 for s in scale) else (
        network.geometry.spacing if network.geometry is not None else None)
    outer = image.labels_shape[:-3]
    parts = ((index, image.data[index]) for index in np.ndindex(*outer))
    return ("volume", outer, parts,
            lambda volume: network.predict(np.asarray(volume), tta=tta),
            lambda probabilities: instance_labels(probabilities, **cells.options,
                                                  spacing=spacing))


def _probabilities(network, image, plane, tta: bool) -> np.ndarray:
    """One plane's class probabilities: whole, or block by block for a lazy layer, in the blocks
    of ``unet predict`` on a zarr input."""
    if not image.lazy:
        return network.predict(np.asarray(plane), tta=tta)
    from keras_unet.inference.blocks import DEFAULT_BLOCK
    from keras_unet.inference.blockwise import predict_array

    return predict_array(network.tiles, plane, block_size=DEFAULT_BLOCK, tta=tta,
                         name=f"image {image.name!r}")


def _cells(probabilities: np.ndarray, cells, lazy: bool) -> np.ndarray:
    """The cells of one plane, with the block-wise labelling where the prediction was block-wise
    (as ``unet predict`` labels a zarr input, in the same blocks)."""
    if lazy:
        from keras_unet.inference.blocks import DEFAULT_BLOCK
        from keras_unet.instances.blockwise import blockwise_instance_labels

        return blockwise_instance_labels(probabilities, block_size=DEFAULT_BLOCK,
                                         **cells.options)
    from keras_unet.instances.labels import instance_labels

    return instance_labels(probabilities, **cells.options)


@dataclasses.dataclass(frozen=True)
class FineTuned:
    """What :func:`finetune` made.

    Attributes:
        model: the new ``.keras`` file (the run's ``best.keras``, beside the run folder).
        folder: the run folder: ``data/`` (the training pairs as ``images/`` + ``masks/``) and
            ``run/`` (``unet train``'s run: config, TensorBoard logs, checkpoints; no
            export, which a fine-tuning round does not need: ``unet export`` makes one).
        steps: training steps run.
        losses: the training loss after each step (Keras's running mean over the epoch).
    """

    model: Path
    folder: Path
    steps: int
    losses: tuple[float, ...]


def finetune_paths(model: Path, folder: str | Path | None = None) -> tuple[Path, Path]:
    """Where a fine-tune of ``model`` goes: ``<stem>-finetune-<n>.keras`` and the run folder
    ``<stem>-finetune-<n>/`` beside it, in ``folder`` (default: the model's), ``n`` the first
    number neither uses. The model it starts from is never written.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> [p.name for p in finetune_paths(folder / "cells-finetune-1.keras")]
        ['cells-finetune-1.keras', 'cells-finetune-1']
        >>> (folder / "cells-finetune-1").mkdir()
        >>> [p.name for p in finetune_paths(folder / "cells-finetune-1.keras")]
        ['cells-finetune-2.keras', 'cells-finetune-2']
    """
    folder = Path(folder) if folder else model.parent
    stem = re.sub(r"-finetune-\d+$", "", model.stem)
    number = 1
    while any(path.exists() for path in (folder / f"{stem}-finetune-{number}.keras",
                                         folder / f"{stem}-finetune-{number}")):
        number += 1
    return folder / f"{stem}-finetune-{number}.keras", folder / f"{stem}-finetune-{number}"


def finetune(pairs: Sequence, model: str | Path, *, steps: int = STEPS,
             folder: str | Path | None = None, report: Report = _quiet,
             cancel: threading.Event | None = None) -> FineTuned:
    """Trains ``steps`` steps from ``model`` on the training pairs, as ``unet train --init``.

    The same losses, weight maps and augmentation as any run; the network's shape (filters,
    depth, padding, batch norm, dropout) is the model's; unlabelled pixels of partial labels
    become the run's ``ignore_label``. Nothing is held out (a person checks the result by
    segmenting again), so the run's last weights are its ``best.keras`` and the cell settings
    are the model's. A cancelled or failed fine-tune removes its run folder and writes no model.

    Args:
        pairs: :class:`keras_unet.napari.layer_data.TrainingPair` s.
        model: the ``.keras`` model to start from (``--init``); never overwritten.
        steps: training steps.
        folder: where the new model and its run folder go (default: beside ``model``).
        report, cancel: the loss after each step; stop at the next step once set.

    Raises:
        ValueError, FileNotFoundError: what ``unet train --init`` refuses, in one line.
        Cancelled: if ``cancel`` was set.

    Example:
        >>> import tempfile
        >>> from keras_unet import build_unet
        >>> from keras_unet.data import synthetic_cells
        >>> from keras_unet.napari.layer_data import TrainingPair
        >>> folder = Path(tempfile.mkdtemp())
        >>> build_unet((None, None, 1), 2, filters=4, depth=2).save(folder / "cells.keras")
        >>> [cells] = synthetic_cells(1, size=96)
        >>> pair = TrainingPair(cells.image, cells.labels, False, False, "a / a cells")
        >>> tuned = finetune([pair], folder / "cells.keras", steps=2)
        >>> tuned.model.name, tuned.steps, sorted(p.name for p in tuned.folder.iterdir())
        ('cells-finetune-1.keras', 2, ['data', 'run'])
    """
    from keras_unet.class_layout import UNLABELLED
    from keras_unet.data.writers import save_samples
    from keras_unet.io.atomic import written_atomically
    from keras_unet.io.paths import refuse_overlap
    from keras_unet.napari.readout import StepReadout
    from keras_unet.training import train
    from keras_unet.training.finetune import load_init_model

    if not pairs:
        raise InputError("the training set is empty: add an image and the labels painted on it.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}.")
    model = model_path(model)
    new_model, run_folder = finetune_paths(model, folder)
    refuse_overlap(new_model, {}, option="the fine-tuned model")  # under a file: never written
    trained = load_init_model(model, "--init")  # refuses what unet train --init refuses
    semantic = trained.layout.labels == "semantic"
    samples = [sample for pair in pairs for sample in pair.samples(semantic=semantic)]
    if not samples:
        raise InputError("the training set has no annotated plane.")
    unlabelled = any((sample.labels == UNLABELLED).any() for sample in samples)
    classes = trained.layout.num_classes if semantic else 0  # ids 0..K-1 are classes
    ignore = (max(int(max(sample.labels.max() for sample in samples)) + 1, classes)
              if unlabelled else None)
    shape = {key: trained.arguments[key]
             for key in ("filters", "depth", "padding", "batch_norm", "dropout")}
    config = {"data": str(run_folder / "data"), "run_dir": str(run_folder / "run"),
              "init": str(model), "ignore_label": ignore, "epochs": 1, "steps_per_epoch": steps,
              "val_fraction": 0, "export": False, **shape}
    readout = StepReadout(report, cancel, steps)
    try:
        save_samples(samples, run_folder / "data", ignore_label=ignore)
        result = train(config, verbose=0, callbacks=[readout])
        check_cancelled(cancel)
        report(Progress(steps, steps, f"saving {new_model.name}"))
        with written_atomically(new_model, option="the fine-tuned model") as temporary:
            shutil.copyfile(result.run.checkpoints / "best.keras", temporary)
    except BaseException:
        shutil.rmtree(run_folder, ignore_errors=True)
        raise
    return FineTuned(new_model, run_folder, result.steps, tuple(readout.losses))
