"""train() end to end: run dir, TensorBoard read back, bfloat16, NaN, bad input, kill and resume."""

import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from keras_unet.cli import main
from keras_unet.data import make_dataset, synthetic_cells
from keras_unet.training import TrainConfig, load_config, split_samples, train
from keras_unet.training.callbacks import validation_panel
from keras_unet.training.run_dir import prepare_run_dir

TINY = {"synthetic_images": 3, "epochs": 2, "steps_per_epoch": 2, "batch_size": 2,
        "tile_size": 92, "depth": 2, "filters": 4, "val_fraction": 0.34}


def _tiny_yaml(tmp_path):
    """The CLI has no flag for the number of synthetic images: a config file sets it."""
    path = tmp_path / "tiny.yaml"
    path.write_text("synthetic_images: 3\n")
    return path


def _tensors(folder):
    accumulator = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    accumulator.Reload()
    return {tag: [(event.step, tf.make_ndarray(event.tensor_proto))
                  for event in accumulator.Tensors(tag)]
            for tag in accumulator.Tags()["tensors"]}


def test_bfloat16_run_writes_checkpoints_config_and_tensorboard(tmp_path):
    config = TrainConfig(**TINY, run_dir=str(tmp_path / "run"), mixed_precision="bfloat16")
    result = train(config, verbose=0)

    assert result.policy == "mixed_bfloat16" and not result.resumed
    conv = result.model.get_layer("enc1_conv1")
    assert (conv.compute_dtype, conv.variable_dtype) == ("bfloat16", "float32")
    assert result.model.output.dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # restored afterwards
    assert all(np.isfinite(result.history["loss"]))

    run = tmp_path / "run"
    assert load_config(run / "config.yaml") == config.replace(num_classes=2)  # resolved
    assert not (run / "backup").exists()  # removed once the run finished
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best.json", "best.keras", "last.keras"]
    last = keras.models.load_model(run / "checkpoints" / "last.keras", compile=False)
    for a, b in zip(last.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    best_epoch = int(np.argmin(result.history["val_loss"]))
    assert result.best["epoch"] == best_epoch + 1
    assert result.best["value"] == pytest.approx(result.history["val_loss"][best_epoch])
    assert result.best["logs"]["val_iou"] == pytest.approx(result.history["val_iou"][best_epoch])
    assert result.export is not None and result.export.is_dir()

    train_logs = _tensors(run / "logs" / "train")
    assert {"epoch_loss", "epoch_iou", "epoch_dice", "epoch_learning_rate",
            "epoch_tiles_per_second"} <= set(train_logs)
    for name in ("loss", "iou", "dice", "tiles_per_second"):
        steps, values = zip(*train_logs[f"epoch_{name}"])
        assert steps == (0, 1)
        np.testing.assert_allclose(values, result.history[name], rtol=1e-6)
    # cosine decay over 2 epochs x 2 steps, read after steps 2 and 4: lr0 (1 + cos(pi s/4)) / 2
    assert [float(v) for _, v in train_logs["epoch_learning_rate"]] == pytest.approx(
        [config.learning_rate / 2, 0.0], rel=1e-6, abs=1e-9)
    assert all(v > 0 for _, v in train_logs["epoch_tiles_per_second"])
    val_logs = _tensors(run / "logs" / "validation")
    for name in ("loss", "iou", "dice", "object_f1"):  # object F1 from ObjectF1
        np.testing.assert_allclose([v for _, v in val_logs[f"epoch_{name}"]],
                                   result.history[f"val_{name}"], rtol=1e-6)

    panels = _tensors(run / "logs" / "images")["validation_panel"]
    assert [step for step, _ in panels] == [0, 1]
    width, height, *pngs = panels[-1][1]
    _, val_samples = split_samples(synthetic_cells(3, seed=0), 0.34, seed=0)
    images, labels, weights = next(iter(make_dataset(
        val_samples, tile_size=92, batch_size=2, depth=2, augment=False, shuffle=False,
        repeat=False)))
    expected = validation_panel(images.numpy(), labels.numpy(),
                                result.model(images, training=False).numpy(), weights.numpy())
    assert (int(width), int(height), len(pngs)) == (4 * 260 + 3 * 4, 16 + 16 + 260, 2)  # 52 px x 5
    pictures = np.stack([tf.io.decode_png(png).numpy() for png in pngs]) / 255.0
    np.testing.assert_allclose(pictures, expected, atol=1.5 / 255)


def test_diverging_loss_stops_with_a_clear_message_and_exit_1(tmp_path, capsys):
    code = main(["train", "--config", str(_tiny_yaml(tmp_path)), "--run-dir",
                 str(tmp_path / "run"), "--learning-rate", "1e12", "--epochs", "2",
                 "--steps-per-epoch", "3", "--batch-size", "2", "--tile-size", "92", "--depth",
                 "2", "--filters", "4", "--mixed-precision", "off", "--val-fraction", "0.34"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("unet train: the loss became nan at epoch 1, step ")
    assert "lower learning_rate (it is 1e+12)" in err
    assert not (tmp_path / "run" / "backup").exists()  # ended: no resume into the NaN weights


def test_the_summary_prints_the_cells_chosen_on_validation_that_the_printed_commands_use(
        tmp_path, capsys, monkeypatch):
    import shlex

    from keras_unet.evaluation import MIN_SIZE_CANDIDATES
    from keras_unet.instances.settings import METHODS

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", str(_tiny_yaml(tmp_path)), "--run-dir",
                 str(tmp_path / "run"), "--epochs", "1", "--steps-per-epoch", "2",
                 "--batch-size", "2", "--tile-size", "92", "--depth", "2", "--filters", "4",
                 "--mixed-precision", "off", "--val-fraction", "0.34"]) == 0
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip()
             for line in capsys.readouterr().out.splitlines() if ":" in line}
    method, size = lines["Cells"].split(",")[0].split()[1], lines["Cells"].split(",")[1].split()[1]
    assert method in METHODS and int(size) in MIN_SIZE_CANDIDATES
    assert "recorded in best.keras and the export" in lines["Cells"]
    scores = r"validation IoU \d\.\d{3}, Dice \d\.\d{3}, object F1 \d\.\d{3}"
    assert re.fullmatch(rf"{scores}, \d+\.\d tiles/s", lines["Last epoch"])
    assert re.fullmatch(rf"1 of 1 \(lowest validation loss, \d+\.\d{{3}}\): {scores} "
                        r"\(best\.keras, exported\)", lines["Best epoch"])
    capsys.readouterr()
    for command in ("Predict", "Evaluate"):  # run as printed, with the recorded settings
        assert "--min-size" not in lines[command]
        assert main(shlex.split(lines[command])[1:]) == 0
        assert (f"cells: method {method}, min_size {size} (from the model)"
                in capsys.readouterr().out)


def test_no_export_keeps_the_checkpoints_and_prints_the_command_that_exports_later(tmp_path):
    import shlex

    unet = os.path.join(os.path.dirname(sys.executable), "unet")
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    run_dir = tmp_path / "run"
    trained = subprocess.run(
        [unet, "train", "--config", str(_tiny_yaml(tmp_path)), "--run-dir", str(run_dir),
         "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--tile-size", "92",
         "--depth", "2", "--filters", "4", "--mixed-precision", "off", "--val-fraction", "0.34",
         "--no-export"], env=environment, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stdout + trained.stderr[-3000:]
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip()
             for line in trained.stdout.splitlines() if ":" in line}
    assert not (run_dir / "export").exists() and (run_dir / "checkpoints" / "best.keras").is_file()
    assert "export: false" in (run_dir / "config.yaml").read_text()
    assert "exported" not in lines["Best epoch"] and "the export" not in lines["Cells"]
    served = lines["Served model"]
    assert served.startswith("none (not exported; unet export --model ") and served.endswith(
        " makes it)")
    command = shlex.split(served.removeprefix("none (not exported; ").removesuffix(" makes it)"))
    exported = subprocess.run([unet, *command[1:]], env=environment, capture_output=True,
                              text=True, timeout=300)  # as printed: the export the run skipped
    assert exported.returncode == 0, exported.stdout + exported.stderr[-3000:]
    assert (run_dir / "export" / "1" / "saved_model.pb").is_file()


def test_missing_or_unrecognised_data_is_refused_before_anything_is_written(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unet train: error: ") and "nowhere" in err and len(
        err.splitlines()) == 1
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    assert main(["train", "--data", str(tmp_path / "empty"), "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unet train: error: ") and "empty" in err
    assert not run_dir.exists()


def test_run_dir_of_another_run_is_refused_and_kept_whole(tmp_path, capsys):
    run_dir = tmp_path / "run"
    prepare_run_dir(TrainConfig(**dict(TINY, epochs=5), run_dir=str(run_dir)))
    (run_dir / "backup").mkdir(exist_ok=True)
    (run_dir / "backup" / "latest.weights.h5").write_bytes(b"weights of the earlier run")
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert main(["train", "--config", str(_tiny_yaml(tmp_path)), "--run-dir", str(run_dir),
                 "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"unet train: error: run dir {str(run_dir)!r} holds a different run "
                          "(epochs: 5 there, 1 now")
    assert "pass --overwrite" in err and len(err.splitlines()) == 1
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def _train_command(run_dir):
    # 100 steps make an epoch last over a second even on a fast CPU (40 took 0.6 s on Zen 5),
    # so the kill below lands inside epoch 2, before its end-of-epoch backup.
    args = ["train", "--run-dir", str(run_dir), "--epochs", "3", "--steps-per-epoch", "100",
            "--batch-size", "2", "--tile-size", "92", "--depth", "2", "--filters", "4",
            "--val-fraction", "0.34", "--mixed-precision", "off", "--no-export", "--config"]
    return [sys.executable, "-c", "import sys; from keras_unet.cli import main; "
            "sys.exit(main(sys.argv[1:]))", *args]


@pytest.mark.slow
def test_killed_run_resumes_with_the_same_command_and_ends_at_the_same_epoch(tmp_path):
    run_dir = tmp_path / "run"
    command = _train_command(run_dir) + [str(_tiny_yaml(tmp_path))]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    seen = []
    deadline = time.monotonic() + 150
    try:
        for line in first.stdout:  # not a terminal: one progress line at each epoch's end
            seen.append(line)
            if ", epoch 1/3," in line:
                time.sleep(0.2)  # into epoch 2: some steps done, far from finished
                break
            assert time.monotonic() < deadline, "".join(seen)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert any(", epoch 1/3," in line for line in seen), "".join(seen)
    assert (run_dir / "backup").is_dir()
    keras.models.load_model(run_dir / "checkpoints" / "last.keras", compile=False)  # whole

    second = subprocess.run(command, env=environment, capture_output=True, text=True,
                            timeout=180)
    assert second.returncode == 0, second.stdout + second.stderr[-3000:]
    assert f"resuming run {run_dir}" in second.stdout
    epochs = re.findall(r"^unet train: step \d+/300, epoch (\d/3),", second.stdout, re.M)
    assert epochs == ["2/3", "3/3"]
    assert not (run_dir / "backup").exists()
    steps = [step for step, _ in _tensors(run_dir / "logs" / "train")["epoch_loss"]]
    assert sorted(set(steps)) == [0, 1, 2]
    assert f"Run directory:   {run_dir}" in second.stdout


def test_a_run_killed_after_training_but_before_its_cells_and_export_resumes_to_them(
        tmp_path, monkeypatch):
    """The backup stays until the cells are chosen and the export written: a run stopped in
    between (here by an error where a kill would strike) is resumed by the same command, which
    then chooses the cells and exports; once finished, the same command is refused."""
    from keras_unet.training import run as run_module

    config = {**TINY, "run_dir": str(tmp_path / "run")}
    chosen = run_module._cell_settings

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "_cell_settings", killed)
    with pytest.raises(KeyboardInterrupt):
        train(config, verbose=0)
    assert (tmp_path / "run" / "backup").is_dir()
    monkeypatch.setattr(run_module, "_cell_settings", chosen)
    result = train(config, verbose=0)
    assert result.resumed and result.history == {} and result.cells is not None
    assert result.export is not None and not (tmp_path / "run" / "backup").exists()
    best = keras.models.load_model(tmp_path / "run" / "checkpoints" / "best.keras")
    assert best.get_config()["cells"] == result.cells.to_json()
    with pytest.raises(FileExistsError, match="holds a finished run of the same config"):
        train(config, verbose=0)


class _Losses(keras.callbacks.Callback):
    """Keeps the loss of every training step it sees."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


class _Cancelled(Exception):
    """What a GUI's Cancel raises from its callback."""


class _CancelAtFirstStep(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        raise _Cancelled


def test_callbacks_of_the_caller_see_every_training_step(tmp_path):
    seen = _Losses()
    result = train({**TINY, "run_dir": str(tmp_path / "run"), "val_fraction": 0,
                    "export": False}, verbose=0, callbacks=[seen])
    steps = TINY["epochs"] * TINY["steps_per_epoch"]
    assert result.steps == steps and len(seen.losses) == steps  # not the timing steps
    assert np.isfinite(seen.losses).all()


def test_a_callback_that_raises_stops_the_run_with_nothing_saved(tmp_path):
    with pytest.raises(_Cancelled):
        train({**TINY, "run_dir": str(tmp_path / "run"), "mixed_precision": "bfloat16",
               "export": False}, verbose=0, callbacks=[_CancelAtFirstStep()])
    assert not (tmp_path / "run" / "checkpoints" / "best.keras").exists()
    assert keras.mixed_precision.global_policy().name == "float32"  # put back
    result = train({**TINY, "run_dir": str(tmp_path / "run"), "mixed_precision": "bfloat16",
                    "export": False}, verbose=0)  # the same run again: resumed, not refused
    assert result.steps == TINY["epochs"] * TINY["steps_per_epoch"]
    assert (tmp_path / "run" / "checkpoints" / "best.keras").is_file()
    assert not (tmp_path / "run" / "backup").exists()
