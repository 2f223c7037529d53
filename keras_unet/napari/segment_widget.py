"""The Segment widget: a model and an image layer in, a Labels layer of cells (or classes) out.

The model is a ``.keras`` file, a SavedModel (chosen by its ``saved_model.pb``), an ONNX file
or a bioimage.io zip written by ``unet export``; the widget opens it as soon as it is chosen,
shows what it is, sets the instance method and ``min_size`` to what it carries, and remembers it
for the next session. Run segments the chosen image layer as ``unet predict --instances`` does
(:func:`keras_unet.napari.jobs.segment`, in the model process, with a progress bar and Cancel) and
adds ``<image> cells`` (a model of classes: ``<image> classes``, named by the model) and,
optionally, ``<image> foreground``, both placed as the image (scale and translate copied). A
second run replaces the layers it made while they hold what it wrote
(:mod:`keras_unet.napari.own_layers`), and removes its foreground layer when run without one; a
layer the user painted on is left as it is.
"""

from __future__ import annotations

import functools
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QSettings

from keras_unet.errors import UserError
from keras_unet.instances.settings import METHODS, MIN_SIZE
from keras_unet.napari.jobs import ModelInfo, Outcome, Segmentation, describe_model, model_path, \
    segment
from keras_unet.napari.layer_data import ImageInput, image_input
from keras_unet.napari.model_process import MODEL_PROCESS
from keras_unet.napari.own_layers import mark, own_layer
from keras_unet.napari.widget_task import JobFailed, WidgetTask, run_job, wrapping

SETTINGS = ("keras_unet", "napari")
"""Organisation and application of the ``QSettings`` that remember the last model."""

MODEL_KEY = "segment/model"
"""The setting that holds the last model opened."""

MODEL_FILTER = "Models (*.keras *.onnx *.zip saved_model.pb)"
"""The file dialog's filter: the files :func:`keras_unet.inference.load_network` opens."""


def remembered_model() -> Path | None:
    """The last model the widget opened, in this or an earlier session."""
    value = QSettings(*SETTINGS).value(MODEL_KEY, "")
    return Path(value) if value else None


def remember_model(path: Path) -> None:
    """Remembers ``path`` as the last model opened."""
    QSettings(*SETTINGS).setValue(MODEL_KEY, str(path))


class SegmentWidget(Container):
    """Segments an image layer with a U-Net: cells exactly as ``unet predict --instances``.

    Attributes:
        model, image, tta, method, min_size, foreground: the choices a person makes.
        run_button, cancel_button, progress, status: Run, Cancel, and how it goes.
        task: the running job (:class:`keras_unet.napari.widget_task.WidgetTask`).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = napari_viewer
        self.model = FileEdit(label="model", mode="r", filter=MODEL_FILTER, nullable=True,
                              tooltip="a .keras file, a SavedModel's saved_model.pb, an .onnx "
                                      "file or a bioimage.io .zip written by unet export")
        self.image = create_widget(annotation=napari.layers.Image, label="image")
        self.tta = CheckBox(text="test-time augmentation (8 views, 8x slower)")
        self.method = ComboBox(label="cells", choices=METHODS,
                               tooltip="how cells are found (unet predict --instance-method); "
                                       "set to what the model carries when it opens")
        self.min_size = SpinBox(label="min size (px)", min=0, max=10**9, value=MIN_SIZE,
                                tooltip="drop cells under this many pixels (--min-size)")
        self.foreground = CheckBox(text="add the foreground probability")
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel")
        self.progress = ProgressBar(value=0, max=1, label="progress")
        self.status = Label(value="choose a model")
        self.extend([self.model, self.image, self.tta, self.method, self.min_size,
                     self.foreground, self.run_button, self.cancel_button, self.progress,
                     wrapping(self.status)])
        self.task = WidgetTask(self.run_button, self.cancel_button, self.progress, self.status,
                               "Segmentation")
        self._model: ModelInfo | None = None
        self._opened: Path | None = None
        self._opening: Path | None = None
        self._run_when_open = False
        self.model.changed.connect(self._model_chosen)
        self.run_button.clicked.connect(self.run)
        MODEL_PROCESS.start()  # TensorFlow starts there while a model is chosen
        remembered = remembered_model()
        if remembered is not None and remembered.exists():
            self.model.value = remembered

    @property
    def current_model(self) -> Path | None:
        """The model that is open (what Run and a fine-tune start from), or None."""
        return self._opened if self._model is not None else None

    def use_model(self, path: Path, *, run: bool = False) -> None:
        """Chooses ``path`` as the model (as a person would) and, with ``run``, segments once it
        is open."""
        self._run_when_open = run
        if self.model.value is not None and model_path(self.model.value) == model_path(path):
            self._open(path)
        else:
            self.model.value = path

    def run(self) -> None:
        """Segments the chosen image layer with the chosen model (Run)."""
        if self.task.busy:
            return
        path = self.model.value
        if path is None:
            show_error("choose a model: a .keras file, a SavedModel's saved_model.pb, an .onnx "
                       "file or a bioimage.io .zip written by unet export.")
            return
        if self._model is None or self._opened != model_path(path):
            self._run_when_open = True
            self._open(path)
            return
        layer = self.image.value
        if layer is None:
            show_error("no image layer: open an image first (File > Open Sample > keras_unet "
                       "has cells to try).")
            return
        try:
            image = image_input(layer)
        except UserError as error:
            show_error(str(error))
            return
        carried = self._model.cells
        chosen = {"method": self.method.value, "min_size": int(self.min_size.value)}
        cells = carried.replaced(**{name: value for name, value in chosen.items()
                                    if value != carried.options[name]})
        self.task.start(segment, self._opened, image, tta=bool(self.tta.value), cells=cells,
                        foreground=bool(self.foreground.value),
                        on_result=functools.partial(self._show, image))

    def _model_chosen(self) -> None:
        """Opens a chosen model once its path names something that may be one (not while a path
        is being typed)."""
        path = self.model.value
        if path is None:
            self._model = self._opened = None
            self.status.value = "choose a model"
            return
        path = model_path(path)
        if path.is_file() or (path / "saved_model.pb").is_file():
            self._open(path)
        else:
            self._model = self._opened = None
            self.status.value = f"no model at {str(path)!r}"

    def _open(self, path: Path) -> None:
        path = model_path(path)
        if self._opening == path:
            return
        self._opening = path
        self.status.value = f"opening {path.name}..."
        run_job(describe_model, path, on_outcome=functools.partial(self._opened_model, path))

    def _opened_model(self, path: Path, outcome: Outcome) -> None:
        if self._opening != path:
            return  # another model was chosen meanwhile
        self._opening = None
        run, self._run_when_open = self._run_when_open, False
        if outcome.failure is not None:
            self.status.value = f"could not open {path.name}: see the notification"
            raise JobFailed(outcome.failure)
        if outcome.error is not None:
            self._model = self._opened = None
            show_error(outcome.error)
            self.status.value = outcome.error
            return
        model = self._model = outcome.result
        self._opened = path
        remember_model(path)
        cells_model = model.layout is None or model.layout.cells
        self.method.value, self.min_size.value = model.cells.method, model.cells.min_size
        self.method.enabled = self.min_size.enabled = cells_model
        for note in model.notes:
            show_info(note)
        self.status.value = model.describe()
        if run:
            self.run()

    def _show(self, image: ImageInput, found: Segmentation) -> None:
        """Adds (or replaces the plugin's own) layers of a finished segmentation."""
        placement = {"scale": image.scale, "translate": image.translate}
        if found.kind == "cells":
            self._put("cells", image.name, found.labels, "labels", placement)
            counts = [np.unique(plane[plane > 0]).size
                      for plane in found.labels.reshape(-1, *image.plane_shape)]
            self.status.value = (f"{sum(counts)} cells" + (f" in {len(counts)} planes"
                                                            if len(counts) > 1 else "")
                                 + f" ({found.cells.method}, min_size {found.cells.min_size})")
        else:
            self._put("classes", image.name, found.labels, "labels", placement,
                      features={"class": list(found.class_names)})
            self.status.value = f"classes: {', '.join(found.class_names)}"
        if found.foreground is not None:
            self._put("foreground", image.name, found.foreground, "image", placement,
                      colormap="magma", contrast_limits=(0.0, 1.0), blending="additive")
        else:  # an earlier run's foreground would sit beside cells it did not make
            stale = own_layer(self._viewer.layers, "foreground", image.name)
            if stale is not None:
                self._viewer.layers.remove(stale)

    def _put(self, role: str, source: str, data, kind: str, placement: dict, **style) -> None:
        """Replaces the data of this widget's unchanged layer of ``role`` from ``source``, or
        adds a layer: never one the user made or painted on."""
        layer_type = napari.layers.Labels if kind == "labels" else napari.layers.Image
        layer = own_layer(self._viewer.layers, role, source)
        if isinstance(layer, layer_type):
            layer.data = data
            for name, value in {**placement, **style}.items():
                if name in ("scale", "translate", "features"):
                    setattr(layer, name, value)
        else:
            add = self._viewer.add_labels if kind == "labels" else self._viewer.add_image
            layer = add(data, name=f"{source} {role}", **placement, **style)
        layer.metadata = {**layer.metadata, **mark(role, source, layer.data)}

