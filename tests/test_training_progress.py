"""The progress line of ``unet train``: its text, in place on a terminal, else once per epoch."""

import io
import re

import keras
import numpy as np

from keras_unet.training import train
from keras_unet.training.progress import ProgressLine, format_duration, progress_text
from keras_unet.training.time_budget import TimeBudget


def test_the_line_says_steps_epoch_loss_object_f1_and_time_left():
    assert progress_text(812, 1800, 7, 15, loss=0.23104, score=("val object F1", 0.87349),
                         seconds_left=130.4) == (
        "step 812/1800, epoch 7/15, loss 0.2310, val object F1 0.873, 2 min 10 s left")
    assert progress_text(3, 40, 1, 2, seconds_left=59.6, limit_seconds=300) == (
        "step 3/40, epoch 1/2, 1 min left of 5 min")
    assert progress_text(0, 40, 1, 2) == "step 0/40, epoch 1/2"
    assert [format_duration(s) for s in (0, 0.4, 59.4, 60, 61, 3599, 3600, 5400, 86400)] == [
        "0 s", "0 s", "59 s", "1 min", "1 min 1 s", "59 min 59 s", "1 h", "1 h 30 min", "24 h"]


def _fit(progress, budget, epochs=3, steps=4):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    data = np.ones((steps, 1), "float32")
    model.fit(data, data, batch_size=1, epochs=epochs, verbose=0, callbacks=[budget, progress])


def test_in_place_the_whole_run_is_one_line_rewritten(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = io.StringIO()
    budget = TimeBudget()
    _fit(ProgressLine(3, 4, budget, in_place=True, stream=out, prefix="unet train: "), budget)
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1  # one line, ended when training ends
    draws = text[:-1].split("\r")[1:]
    assert text.startswith("\r") and len(draws) >= 3  # at least each epoch's end
    assert draws[-1].rstrip().startswith("unet train: step 12/12, epoch 3/3, loss ")
    assert all(len(draw) >= len(before.rstrip()) for before, draw in zip(draws, draws[1:]))


def test_not_on_a_terminal_at_most_one_line_per_epoch(tmp_path, capsys):
    result = train({"run_dir": str(tmp_path / "run"), "synthetic_images": 3, "epochs": 3,
                    "steps_per_epoch": 2, "batch_size": 2, "tile_size": 92, "depth": 2,
                    "filters": 2, "val_fraction": 0.34, "mixed_precision": "off",
                    "export": False})
    out = capsys.readouterr().out  # captured: not a terminal
    assert "\r" not in out and "Epoch 1/3" not in out  # no Keras progress bar either
    lines = [line for line in out.splitlines() if line.startswith("unet train: step ")]
    assert len(lines) == 3
    for epoch, line in enumerate(lines, 1):
        f1 = result.history["val_object_f1"][epoch - 1]
        assert re.fullmatch(rf"unet train: step {2 * epoch}/6, epoch {epoch}/3, loss \d+\.\d{{4}}, "
                            rf"val object F1 {f1:.3f}(, \d+ s left)?", line), line
    assert lines[-1].endswith(", 0 s left")


def test_in_place_the_line_is_cut_to_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "30")  # a wrapped line could not be rewritten
    out = io.StringIO()
    budget = TimeBudget()
    _fit(ProgressLine(3, 4, budget, in_place=True, stream=out, prefix="unet train: "), budget)
    draws = out.getvalue()[:-1].split("\r")[1:]
    assert draws and all(len(draw) == 29 for draw in draws)
    assert draws[-1] == "unet train: step 12/12, epoch"
