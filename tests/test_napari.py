"""The napari plugin in a real viewer, driven as a person would: choose a model, press Run, wait.

These tests need the ``napari`` extra and an X display with OpenGL (Xvfb with Mesa: ``.ci/run``
installs and starts one; Qt's ``offscreen`` platform has no OpenGL), and a pytest run of their
own (``pytest tests/test_napari.py``): TensorFlow never loads in this process, as it never loads
in napari's (keras_unet/napari/model_process.py), so every model is trained and every reference
``unet predict`` runs in a subprocess. Setting ``KERAS_UNET_SCREENSHOT=docs/napari.png`` writes
the README's picture.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari", reason="tests/test_napari.py needs the napari extra (pip install "
                                     "-e '.[dev,napari]') and an X display: .ci/run has both")
if not os.environ.get("DISPLAY") or importlib.util.find_spec("pytestqt") is None:
    pytest.skip("tests/test_napari.py needs the napari extra and an X display with OpenGL "
                "(Xvfb: .ci/run starts one)", allow_module_level=True)

import scipy.ndimage  # noqa: E402
import tifffile  # noqa: E402
import zarr  # noqa: E402
from napari.utils.notifications import notification_manager  # noqa: E402
from PIL import Image  # noqa: E402
from qtpy.QtCore import QSettings, Qt  # noqa: E402

from keras_unet.data.synthetic import synthetic_cells  # noqa: E402
from keras_unet.evaluation.matching import matching  # noqa: E402
from keras_unet.napari import PLUGIN  # noqa: E402
from keras_unet.napari.own_layers import checksum  # noqa: E402

WAIT = 300_000
"""Milliseconds to wait for a job (a fine-tune on a loaded machine takes a minute)."""

MODELS = """
import sys
from keras_unet import build_unet
from keras_unet.training import train

folder = sys.argv[1]
result = train({"run_dir": folder + "/start", "synthetic_images": 6, "epochs": 2,
                "steps_per_epoch": 100, "filters": 8, "depth": 2, "tile_size": 92,
                "val_fraction": 0.34}, verbose=0)
tissue = build_unet((None, None, 1), 4, filters=4, depth=2, labels="semantic",
                    class_names=["background", "stroma", "tumour", "necrosis"])
tissue.save(folder + "/tissue.keras")
"""
"""Trains the starting model briefly on synthetic cells at their own size, and saves an untrained
4-class semantic model (a subprocess: no TensorFlow in this one)."""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """``cells`` (trained on synthetic cells), ``tissue`` (4 semantic classes), ``notes`` (a file
    named like a model that is not one)."""
    folder = tmp_path_factory.mktemp("models")
    subprocess.run([sys.executable, "-c", MODELS, str(folder)], check=True, timeout=900)
    (folder / "notes.keras").write_text("not a model")
    return {"cells": folder / "start" / "checkpoints" / "best.keras",
            "tissue": folder / "tissue.keras", "notes": folder / "notes.keras"}


@pytest.fixture(autouse=True)
def _settings_and_no_tensorflow(tmp_path):
    """Each test remembers models in its own settings; none loads TensorFlow in this process."""
    for settings_format in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(settings_format, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    yield
    assert "tensorflow" not in sys.modules


@pytest.fixture
def widgets(make_napari_viewer):
    """(viewer, Segment widget, Fine-tune widget), opened as ``napari --with PLUGIN`` opens a
    plugin's widgets: its first, which opens the other."""
    viewer = make_napari_viewer()
    _, finetune = viewer.window.add_plugin_dock_widget(PLUGIN)
    return viewer, finetune.segment, finetune


def _unet(*args) -> subprocess.CompletedProcess:
    """The ``unet`` command (this environment's), in a subprocess."""
    return subprocess.run([str(Path(sys.executable).with_name("unet")), *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def _open(qtbot, segment, path: Path) -> None:
    """Chooses a model as a person types its path, and waits until it is open."""
    segment.model.value = path
    qtbot.waitUntil(lambda: segment.current_model == path, timeout=WAIT)


def _press(qtbot, button, widget) -> None:
    """Presses a widget's button and waits for its job to end."""
    qtbot.mouseClick(button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.task.busy, timeout=WAIT)


def _messages(since: int) -> list[str]:
    return [str(record.message) for record in notification_manager.records[since:]]


def _state(viewer) -> list[tuple[str, str]]:
    """Every layer's name and a checksum of its data: what nothing may change."""
    return [(layer.name, checksum(layer.data[0] if layer.multiscale else layer.data))
            for layer in viewer.layers]


def _zoomed(seed: int, size: int = 160, zoom: float = 2.0):
    """Synthetic cells twice as large as those the starting model saw."""
    [sample] = synthetic_cells(1, size=size, seed=seed)
    return (scipy.ndimage.zoom(sample.image, zoom, order=1),
            scipy.ndimage.zoom(sample.labels, zoom, order=0))


def test_the_plugin_opens_both_widgets_and_its_sample_data(widgets):
    from npe2 import PluginManager

    viewer, segment, finetune = widgets
    names = [widget.display_name for widget in PluginManager.instance().iter_widgets()
             if widget.plugin_name == PLUGIN]
    assert names == ["Fine-tune", "Segment"]
    assert type(finetune).__name__ == "FineTuneWidget"
    assert viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")[1] is segment  # docked too
    viewer.open_sample(PLUGIN, "synthetic_cells")
    assert [(layer.name, type(layer).__name__) for layer in viewer.layers] == [
        ("synthetic cells", "Image"), ("synthetic cells masks", "Labels")]
    assert viewer.layers["synthetic cells masks"].data.max() > 50


def test_run_adds_the_cells_of_unet_predict_instances_and_a_rerun_spares_edited_layers(
        widgets, models, tmp_path, qtbot, make_napari_viewer):
    viewer, segment, _ = widgets
    [sample] = synthetic_cells(1, size=192, seed=7)
    Image.fromarray(sample.image).save(tmp_path / "a.png")
    command = _unet("predict", "--model", models["cells"], "--input", tmp_path / "a.png",
                    "--output", tmp_path / "out", "--instances")
    assert command.returncode == 0, command.stderr
    expected = tifffile.imread(tmp_path / "out" / "a_instances.tif")
    image = viewer.add_image(sample.image, name="a", scale=(0.5, 0.25), translate=(10, -3))
    _open(qtbot, segment, models["cells"])
    segment.image.value, segment.foreground.value = image, True
    _press(qtbot, segment.run_button, segment)

    cells, foreground = viewer.layers["a cells"], viewer.layers["a foreground"]
    assert expected.max() > 10  # the model finds cells, and the widget the same ones
    np.testing.assert_array_equal(cells.data, expected)
    for layer in (cells, foreground):
        assert tuple(layer.scale) == (0.5, 0.25) and tuple(layer.translate) == (10, -3)
    assert 0 <= foreground.data.min() < foreground.data.max() <= 1

    cells.paint((3, 3), 999)  # the user corrects a cell: the layer is now theirs
    painted = cells.data.copy()
    _press(qtbot, segment.run_button, segment)
    assert viewer.layers["a foreground"] is foreground and len(viewer.layers) == 4
    np.testing.assert_array_equal(cells.data, painted)
    [again] = [layer for layer in viewer.layers if layer.name not in ("a", "a cells",
                                                                      "a foreground")]
    np.testing.assert_array_equal(again.data, expected)

    segment.foreground.value = False  # the earlier foreground would not belong to these cells
    _press(qtbot, segment.run_button, segment)
    assert [layer.name for layer in viewer.layers] == ["a", "a cells", again.name]
    np.testing.assert_array_equal(again.data, expected)

    later = make_napari_viewer()  # the next session remembers the model
    next_segment = later.window.add_plugin_dock_widget(PLUGIN, "Segment")[1]
    assert next_segment.model.value == models["cells"]
    qtbot.waitUntil(lambda: next_segment.current_model == models["cells"], timeout=WAIT)


def test_a_stack_is_segmented_plane_by_plane_and_cancel_leaves_no_half_layer(widgets, models,
                                                                             qtbot):
    viewer, segment, _ = widgets
    stack = np.stack([sample.image for sample in synthetic_cells(8, size=512, seed=3)])
    layer = viewer.add_image(stack, name="stack")
    _open(qtbot, segment, models["cells"])
    segment.image.value = layer
    before, seen = _state(viewer), len(notification_manager.records)
    qtbot.mouseClick(segment.run_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: segment.status.value.startswith("predicting"), timeout=WAIT)
    qtbot.mouseClick(segment.cancel_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not segment.task.busy, timeout=WAIT)
    assert _state(viewer) == before and segment.progress.value < segment.progress.max
    assert _messages(seen) == ["Segmentation cancelled: nothing was changed."]

    _press(qtbot, segment.run_button, segment)
    cells = viewer.layers["stack cells"].data
    assert cells.shape == stack.shape
    plane = viewer.add_image(stack[5], name="plane 5")
    segment.image.value = plane
    _press(qtbot, segment.run_button, segment)
    np.testing.assert_array_equal(viewer.layers["plane 5 cells"].data, cells[5])


def test_a_multiscale_zarr_layer_is_segmented_block_wise_as_unet_predict_does_it(
        widgets, models, tmp_path, qtbot):
    viewer, segment, _ = widgets
    [sample] = synthetic_cells(1, size=300, seed=11)
    level0 = zarr.create_array(tmp_path / "big.zarr", shape=(300, 300), chunks=(128, 128),
                               dtype="uint8")
    level0[:] = sample.image
    command = _unet("predict", "--model", models["cells"], "--input", tmp_path / "big.zarr",
                    "--output", tmp_path / "big.ome.zarr", "--instances")
    assert command.returncode == 0, command.stderr
    expected = zarr.open_group(tmp_path / "big.ome.zarr", mode="r")["labels/instances/0"][:]
    layer = viewer.add_image([level0, sample.image[::2, ::2]], multiscale=True, name="big")
    _open(qtbot, segment, models["cells"])
    segment.image.value = layer
    _press(qtbot, segment.run_button, segment)
    np.testing.assert_array_equal(viewer.layers["big cells"].data, np.squeeze(expected))


def test_a_model_of_classes_adds_a_labels_layer_of_classes_named_by_the_model(widgets, models,
                                                                              qtbot):
    viewer, segment, _ = widgets
    image = viewer.add_image(synthetic_cells(1, size=96, seed=2)[0].image, name="tissue")
    _open(qtbot, segment, models["tissue"])
    assert not segment.method.enabled and not segment.min_size.enabled  # no cells here
    segment.image.value = image
    _press(qtbot, segment.run_button, segment)
    classes = viewer.layers["tissue classes"]
    assert classes.data.shape == (96, 96) and classes.data.max() < 4
    assert list(classes.features["class"]) == ["background", "stroma", "tumour", "necrosis"]


def test_bad_input_is_one_notification_as_the_command_says_it_and_changes_nothing(
        widgets, models, tmp_path, qtbot):
    viewer, segment, finetune = widgets
    _open(qtbot, segment, models["cells"])
    seen = len(notification_manager.records)
    _press(qtbot, segment.run_button, segment)  # no image layer yet
    [message] = _messages(seen)
    assert message.startswith("no image layer") and len(viewer.layers) == 0

    rgb = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    command = _unet("predict", "--model", models["cells"], "--input", tmp_path / "rgb.png",
                    "--output", tmp_path / "out")
    refused = command.stderr.splitlines()[0].split(": ", 2)[2]  # unet predict: error: ...
    viewer.add_image(rgb, name="photo", rgb=True)
    viewer.add_labels(np.zeros((30, 30), np.int32), name="sketch")
    before, seen = _state(viewer), len(notification_manager.records)
    segment.image.value = viewer.layers["photo"]
    _press(qtbot, segment.run_button, segment)
    assert _messages(seen) == [refused] and _state(viewer) == before

    command = _unet("predict", "--model", models["notes"], "--input", tmp_path / "rgb.png",
                    "--output", tmp_path / "out")
    seen = len(notification_manager.records)
    segment.model.value = models["notes"]
    qtbot.waitUntil(lambda: len(notification_manager.records) > seen, timeout=WAIT)
    assert _messages(seen) == [command.stderr.strip().removeprefix("unet predict: error: ")]
    assert segment.current_model is None and _state(viewer) == before

    seen = len(notification_manager.records)
    finetune.image.value, finetune.labels.value = viewer.layers["photo"], viewer.layers["sketch"]
    qtbot.mouseClick(finetune.add_button.native, Qt.MouseButton.LeftButton)
    [message] = _messages(seen)
    assert message.startswith("labels 'sketch' have shape (30, 30), but image 'photo' has "
                              "(40, 50)") and finetune.pairs == []
    assert all("\n" not in text for text in _messages(0)) and _state(viewer) == before


def test_finetuning_on_corrected_cells_raises_object_f1_on_another_image_then_segments_again(
        widgets, models, qtbot):
    viewer, segment, finetune = widgets
    (image_a, truth_a), (image_b, truth_b) = _zoomed(101), _zoomed(102)
    start = models["cells"].read_bytes()
    viewer.add_image(image_a, name="A")
    viewer.add_labels(truth_a, name="A corrected")  # the cells of A after the user's edits
    viewer.add_image(image_b, name="B")
    _open(qtbot, segment, models["cells"])
    segment.image.value = viewer.layers["B"]
    _press(qtbot, segment.run_button, segment)
    before = matching(truth_b, viewer.layers["B cells"].data, 0.5).f1

    finetune.image.value, finetune.labels.value = viewer.layers["A"], viewer.layers["A corrected"]
    qtbot.mouseClick(finetune.add_button.native, Qt.MouseButton.LeftButton)
    assert [pair.name for pair in finetune.pairs] == ["A / A corrected"]
    first = checksum(viewer.layers["B cells"].data)
    qtbot.mouseClick(finetune.train_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: " of 200: loss " in finetune.status.value, timeout=WAIT)  # live
    qtbot.waitUntil(lambda: not finetune.task.busy, timeout=WAIT)
    tuned = models["cells"].with_name("best-finetune-1.keras")
    qtbot.waitUntil(lambda: segment.current_model == tuned and not segment.task.busy
                    and checksum(viewer.layers["B cells"].data) != first, timeout=WAIT)

    after = matching(truth_b, viewer.layers["B cells"].data, 0.5).f1
    assert after > before, (before, after)
    assert tuned.is_file() and models["cells"].read_bytes() == start
    assert sorted(p.name for p in tuned.with_suffix("").iterdir()) == ["data", "run"]


def test_cancel_stops_a_finetune_with_no_model_written(widgets, models, qtbot):
    viewer, segment, finetune = widgets
    image, truth = _zoomed(103, size=96)
    viewer.add_image(image, name="C")
    sketch = np.zeros_like(truth)
    sketch[:20] = 1  # background, for partial labels (0: not annotated)
    sketch[truth == truth[60, 60]] = 2
    viewer.add_labels(sketch, name="C sketch")
    _open(qtbot, segment, models["cells"])
    folder_before = sorted(models["cells"].parent.iterdir())
    finetune.image.value, finetune.labels.value = viewer.layers["C"], viewer.layers["C sketch"]
    finetune.partial.value, finetune.steps.value = True, 5000
    seen = len(notification_manager.records)
    qtbot.mouseClick(finetune.train_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "loss" in finetune.status.value, timeout=WAIT)
    qtbot.mouseClick(finetune.cancel_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not finetune.task.busy, timeout=WAIT)
    assert _messages(seen) == ["Fine-tuning cancelled: nothing was changed."]
    assert sorted(models["cells"].parent.iterdir()) == folder_before
    assert segment.current_model == models["cells"]


def test_the_readme_picture_shows_the_viewer_after_segmentation(make_napari_viewer, models,
                                                                 tmp_path, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1400, 820)
    _, segment = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    viewer.open_sample(PLUGIN, "synthetic_cells")
    viewer.layers["synthetic cells masks"].visible = False
    _open(qtbot, segment, models["cells"])
    segment.image.value = viewer.layers["synthetic cells"]
    segment.method.value, segment.min_size.value = "components", 30  # this briefly trained
    # model carries "membranes", which gives the background to the cells too
    _press(qtbot, segment.run_button, segment)
    viewer.layers["synthetic cells cells"].contour = 1
    picture = viewer.screenshot(tmp_path / "napari.png", canvas_only=False)
    assert picture.shape[0] > 500 and picture.shape[1] > 1000
    assert len(np.unique(picture.reshape(-1, picture.shape[-1]), axis=0)) > 1000  # drawn
    if os.environ.get("KERAS_UNET_SCREENSHOT"):
        Path(os.environ["KERAS_UNET_SCREENSHOT"]).write_bytes((tmp_path / "napari.png")
                                                               .read_bytes())
