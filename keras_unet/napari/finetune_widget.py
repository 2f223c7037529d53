"""The Fine-tune widget: teach the current model its mistakes, then segment again.

A person corrects the cells the Segment widget found (or sketches some cells and background on
a new Labels layer and ticks "partial labels"), adds the image and its labels to the training
set (as many pairs as they like: each is copied when added), and presses Fine-tune: a few
hundred steps of ``unet train --init`` from the Segment widget's model
(:func:`keras_unet.napari.jobs.finetune`, off the GUI thread), with the loss after each step
and Cancel. The new model is saved beside its run folder (``<model>-finetune-<n>.keras`` and
``<model>-finetune-<n>/``, in the model's folder unless another is chosen; the model it starts
from is never written), becomes the Segment widget's model, and the Segment widget runs again.
Opening this widget opens the Segment widget beside it.
"""

from __future__ import annotations

import napari
from magicgui.widgets import (
    CheckBox,
    Container,
    FileEdit,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.utils.notifications import show_error, show_info

from keras_unet.errors import InputError, UserError
from keras_unet.napari import PLUGIN
from keras_unet.napari.jobs import STEPS, FineTuned, finetune
from keras_unet.napari.layer_data import BACKGROUND, TrainingPair, training_pair
from keras_unet.napari.widget_task import WidgetTask, wrapping


class FineTuneWidget(Container):
    """Fine-tunes the Segment widget's model on image/labels pairs, then segments again.

    Attributes:
        segment: the Segment widget of the same viewer (its model is the one fine-tuned).
        image, labels, partial: the pair to add (labels painted on the image; a sketch).
        pairs: the training set, copies of the pairs added.
        steps, folder: training steps, and where the new model and its run folder go.
        train_button, cancel_button, progress, status: Fine-tune, Cancel, and the live loss.
        task: the running job (:class:`keras_unet.napari.widget_task.WidgetTask`).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.segment = napari_viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")[1]
        self.image = create_widget(annotation=napari.layers.Image, label="image")
        self.labels = create_widget(annotation=napari.layers.Labels, label="labels")
        self.partial = CheckBox(text=f"partial labels: 0 = not annotated, {BACKGROUND} = "
                                     "background")
        self.add_button = PushButton(text="Add to the training set")
        self.clear_button = PushButton(text="Clear the training set")
        self.training_set = Label()
        self.steps = SpinBox(label="steps", min=1, max=10**6, value=STEPS)
        self.folder = FileEdit(label="save in", mode="d", nullable=True,
                               tooltip="where the new model and its run folder go (default: "
                                       "the folder of the model it starts from)")
        self.train_button = PushButton(text="Fine-tune")
        self.cancel_button = PushButton(text="Cancel")
        self.progress = ProgressBar(value=0, max=1, label="progress")
        self.status = Label(value="starts from the Segment widget's model")
        self.extend([self.image, self.labels, self.partial, self.add_button, self.clear_button,
                     wrapping(self.training_set), self.steps, self.folder, self.train_button,
                     self.cancel_button, self.progress, wrapping(self.status)])
        self.pairs: list[TrainingPair] = []
        self.task = WidgetTask(self.train_button, self.cancel_button, self.progress,
                               self.status, "Fine-tuning")
        self.add_button.clicked.connect(self.add)
        self.clear_button.clicked.connect(self.clear)
        self.train_button.clicked.connect(self.train)
        self._list_pairs()

    def add(self) -> None:
        """Adds a copy of the chosen image and labels to the training set."""
        try:
            self.pairs.append(self._chosen_pair())
        except UserError as error:
            show_error(str(error))
            return
        self._list_pairs()

    def clear(self) -> None:
        """Empties the training set."""
        self.pairs.clear()
        self._list_pairs()

    def train(self) -> None:
        """Fine-tunes the Segment widget's model on the training set (or, if it is empty, on
        the chosen pair), then segments again with the new model."""
        if self.task.busy:
            return
        try:
            model = self.segment.current_model
            if model is None:
                raise InputError("no model to start from: open a .keras model in the Segment "
                                 "widget first.")
            pairs = list(self.pairs) or [self._chosen_pair()]
        except UserError as error:
            show_error(str(error))
            return
        self.task.start(finetune, pairs, model, steps=int(self.steps.value),
                        folder=self.folder.value, on_result=self._tuned)

    def _chosen_pair(self) -> TrainingPair:
        if self.image.value is None:
            raise InputError("no image layer: open the image the labels were painted on.")
        if self.labels.value is None:
            raise InputError("no labels layer: correct the cells the Segment widget found, or "
                             "paint some on a new Labels layer.")
        return training_pair(self.image.value, self.labels.value,
                             partial=bool(self.partial.value))

    def _list_pairs(self) -> None:
        self.training_set.value = ("training set: " + "; ".join(
            f"{pair.name}{' (partial)' if pair.partial else ''}" for pair in self.pairs)
            if self.pairs else "training set: empty (Fine-tune takes the pair above)")

    def _tuned(self, tuned: FineTuned) -> None:
        message = (f"saved {tuned.model} ({tuned.steps} steps, loss {tuned.losses[0]:.4f} -> "
                   f"{tuned.losses[-1]:.4f}; run folder {tuned.folder})")
        self.status.value = message
        show_info(message)
        self.segment.use_model(tuned.model, run=True)
