"""Training callbacks: panels against hand-made pictures, checkpoints that survive failures."""

import re
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_unet
from keras_unet.class_layout import class_colour
from keras_unet.errors import FaultError
from keras_unet.training.callbacks import (
    AtomicCheckpoints,
    NaNGuard,
    ResumableBackup,
    Throughput,
    save_model_atomically,
)
from keras_unet.visualize import PANEL_GAP, PANEL_LEGEND, PANEL_TITLE, validation_panel


def _tiny_model():
    return keras_unet.build_unet((None, None, 1), 2, filters=2, depth=2)


def test_validation_panel_shows_cropped_input_class_colours_and_scaled_weights():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 10, 10, 1))
    labels = rng.integers(-1, 3, size=(2, 4, 4))  # -1: unlabelled
    probabilities = rng.dirichlet(np.ones(3), size=(2, 4, 4))
    weights = rng.uniform(1, 10, size=(2, 4, 4))
    panel = validation_panel(images, labels, probabilities, weights, ("bg", "cell", "ring"))
    scale, side = 64, 4 * 64  # 4-pixel tiles are shown at 256 px
    strips = PANEL_TITLE + PANEL_LEGEND
    assert panel.shape == (2, strips + side, 4 * side + 3 * PANEL_GAP, 3)
    assert panel.dtype == np.float32
    body = panel[:, strips:]
    crop = images[:, 3:7, 3:7, 0]
    low, high = crop.min(axis=(1, 2))[:, None, None], crop.max(axis=(1, 2))[:, None, None]
    colours = np.array([class_colour(k) for k in range(3)]) / 255.0
    grey = lambda picture: np.repeat(picture[..., None], 3, -1)  # noqa: E731
    expected = [grey((crop - low) / (high - low)),
                np.where((labels < 0)[..., None], 0.5, colours[np.maximum(labels, 0)]),
                colours[probabilities.argmax(-1)] * probabilities.max(-1)[..., None],
                grey(weights / weights.max(axis=(1, 2))[:, None, None])]
    for index, picture in enumerate(expected):
        start = index * (side + PANEL_GAP)
        shown = body[:, :, start:start + side]
        np.testing.assert_allclose(shown[:, ::scale, ::scale], picture, rtol=1e-6)
        np.testing.assert_array_equal(shown, np.repeat(np.repeat(shown[:, ::scale, ::scale],
                                                                 scale, 1), scale, 2))
        if index < 3:
            assert np.all(body[:, :, start + side:start + side + PANEL_GAP] == 1.0)
        assert panel[:, :PANEL_TITLE, start:start + side].max() > 0.5  # the column's title
    legend = panel[0, PANEL_TITLE:strips]
    for colour in colours[1:]:  # a square of each class's colour
        assert np.isclose(legend, colour, atol=1 / 255).all(-1).sum() >= 64
    assert panel.min() >= 0 and panel.max() <= 1


def test_validation_panel_shows_colour_tiles_in_colour_and_averages_other_channels():
    rng = np.random.default_rng(1)
    labels, weights = np.zeros((1, 4, 4), int), np.ones((1, 4, 4))
    probabilities = np.stack([np.ones((1, 4, 4)), np.zeros((1, 4, 4))], -1)
    start = PANEL_TITLE + PANEL_LEGEND
    for channels in (2, 3):
        images = rng.normal(size=(1, 10, 10, channels))
        shown = validation_panel(images, labels, probabilities, weights)[0, start::64, :256:64]
        crop = images[0, 3:7, 3:7]
        if channels == 2:
            crop = np.repeat(crop.mean(-1, keepdims=True), 3, -1)
        np.testing.assert_allclose(shown, (crop - crop.min()) / (crop.max() - crop.min()),
                                   rtol=1e-6)


def test_throughput_counts_tiles_of_training_steps_only(monkeypatch):
    clock = iter([10.0, 13.0, 13.5, 14.0, 20.0, 20.5])
    monkeypatch.setattr("keras_unet.training.callbacks.time.perf_counter", lambda: next(clock))
    callback = Throughput(global_batch_size=6)
    callback.on_epoch_begin(0)              # t = 10
    for step in range(3):                   # t = 13 (first step: compiles), 13.5, 14
        callback.on_train_batch_end(step)
    logs = {}
    callback.on_epoch_end(0, logs)          # validation time after t = 14 is not counted
    assert logs["tiles_per_second"] == pytest.approx(2 * 6 / 1.0)
    callback.on_epoch_begin(1)              # a one-step epoch: t = 20 to 20.5
    callback.on_train_batch_end(0)
    callback.on_epoch_end(1, logs)
    assert logs["tiles_per_second"] == pytest.approx(6 / 0.5)


def test_checkpoints_keep_the_best_across_a_resume_and_skip_nan_epochs(tmp_path):
    model = _tiny_model()
    callback = AtomicCheckpoints(tmp_path, monitor="val_iou", mode="max")
    callback.set_model(model)
    callback.on_epoch_end(0, {"loss": 1.0, "val_iou": 0.5})
    best_bytes = (tmp_path / "best.keras").read_bytes()
    resumed = AtomicCheckpoints(tmp_path, monitor="val_iou", mode="max")  # a new process
    resumed.set_model(model)
    resumed.on_epoch_end(1, {"loss": 0.9, "val_iou": 0.4})
    assert (tmp_path / "best.keras").read_bytes() == best_bytes
    assert resumed.best_state() == {"monitor": "val_iou", "value": 0.5, "epoch": 1,
                                    "logs": {"loss": 1.0, "val_iou": 0.5}}
    last_mtime = (tmp_path / "last.keras").stat().st_mtime_ns
    resumed.on_epoch_end(2, {"loss": float("nan"), "val_iou": 0.9})
    assert (tmp_path / "last.keras").stat().st_mtime_ns == last_mtime
    resumed.on_epoch_end(3, {"loss": 0.8, "val_iou": 0.6})
    assert resumed.best_state()["value"] == 0.6 and resumed.best_state()["epoch"] == 4
    restored = keras.models.load_model(tmp_path / "best.keras", compile=False)
    for a, b in zip(restored.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_min_mode_keeps_the_smallest(tmp_path):
    callback = AtomicCheckpoints(tmp_path, monitor="val_loss", mode="min")
    callback.set_model(_tiny_model())
    for epoch, value in enumerate([0.5, 0.3, 0.4]):
        callback.on_epoch_end(epoch, {"loss": 1.0, "val_loss": value})
    assert (callback.best_state()["value"], callback.best_state()["epoch"]) == (0.3, 2)
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
        AtomicCheckpoints(tmp_path, mode="best")


def test_a_save_that_dies_midway_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    model = _tiny_model()
    path = save_model_atomically(model, tmp_path / "last.keras")
    before = path.read_bytes()

    def dies_after_writing_half(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as handle:
            handle.write(before[: len(before) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save", dies_after_writing_half)
    with pytest.raises(KeyboardInterrupt):
        save_model_atomically(model, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.keras"]


def _fitted_with_backup(folder, **fit):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    backup = ResumableBackup(str(folder), double_checkpoint=True, delete_checkpoint=False)
    model.fit(np.ones((4, 1)), np.ones((4, 1)), verbose=0, callbacks=[backup], **fit)
    return model


def test_a_backup_that_fails_midway_leaves_the_previous_copies_whole(tmp_path, monkeypatch):
    folder = tmp_path / "backup"
    model = _fitted_with_backup(folder, epochs=2)  # two saves: latest and .bkp
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert sorted(before) == ["latest.weights.h5", "latest.weights.h5.bkp",
                              "training_metadata.json", "training_metadata.json.bkp"]

    def disk_full_halfway(filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"half")
        raise OSError(28, "Can't synchronously write data (file write failed ...)")

    monkeypatch.setattr(model, "save_weights", disk_full_halfway)
    backup = ResumableBackup(str(folder), double_checkpoint=True)
    backup.set_model(model)
    with pytest.raises(FaultError, match="backup/latest.weights.h5' could not be written: No "
                                         "space left on device.$"):
        backup._save_model()
    assert {p.name: p.read_bytes() for p in folder.iterdir()}["latest.weights.h5"] == \
        before["latest.weights.h5"]  # the last complete copy, which a resume loads
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_a_backup_is_refused_before_writing_when_the_disk_cannot_hold_it(tmp_path, monkeypatch):
    """h5py can crash the process on a full disk: a backup that cannot fit is not begun."""
    import shutil

    model = _fitted_with_backup(tmp_path / "backup", epochs=1)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, 10))
    monkeypatch.setattr(model, "save_weights", lambda *a, **k: pytest.fail("began writing"))
    backup = ResumableBackup(str(tmp_path / "backup"), double_checkpoint=True)
    backup.set_model(model)
    with pytest.raises(FaultError, match="No space left on device"):
        backup._save_model()


def test_nan_guard_stops_fit_and_names_the_step():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1e30), "mse")
    guard = NaNGuard(hint="lower the learning rate.")
    x = np.full((64, 1), 1e3, "float32")
    history = model.fit(x, x, batch_size=1, epochs=3, callbacks=[guard], verbose=0)
    assert guard.message is not None
    match = re.fullmatch(r"the loss became (nan|inf) at epoch (\d+), step (\d+); training "
                         r"stopped: lower the learning rate\.", guard.message)
    assert match, guard.message
    assert int(match[2]) == 1 and 1 <= int(match[3]) < 64
    assert len(history.history["loss"]) == 1
