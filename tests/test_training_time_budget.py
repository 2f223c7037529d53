"""The time limit: epochs spread over it, the stop at it, the learning rate over it, resume.

Nothing here times the test itself: the assertions are on epochs, steps and the training time
the run recorded, with margins of a whole epoch. Where a test needs the limit (not the end of
the epochs) to stop a run, it makes the measured speed optimistic, as a machine that slows
down after the first steps would.
"""

import json

import keras
import numpy as np
import pytest

from keras_unet.cli import main
from keras_unet.training import TrainConfig, train
from keras_unet.training.callbacks import ValidationPanel
from keras_unet.training.learning_rate import CosineDecayOverBudget, cosine_decay, run_progress
from keras_unet.training.step_timing import plan_steps_per_epoch
from keras_unet.training.time_budget import TimeBudget, TrainingTime

TINY = {"synthetic_images": 3, "batch_size": 2, "tile_size": 92, "depth": 2, "filters": 2,
        "val_fraction": 0.34, "mixed_precision": "off"}


def _measured(monkeypatch, seconds_per_step):
    """Makes ``train`` believe a step takes ``seconds_per_step`` on this machine."""
    monkeypatch.setattr("keras_unet.training.run.measure_seconds_per_step",
                        lambda model, dataset: seconds_per_step)


def _ticking(monkeypatch, seconds_per_tick):
    """Makes the run's budget read a clock that advances ``seconds_per_tick`` whenever it is
    read (once per step and at each epoch's start), so the test does not hang on this
    machine's load."""
    import itertools

    from keras_unet.training import run as run_module

    ticks, real = itertools.count(), run_module.TimeBudget
    monkeypatch.setattr(run_module, "TimeBudget", lambda *args, **kwargs: real(
        *args, clock=lambda: next(ticks) * seconds_per_tick, **kwargs))


def _record(run_dir):
    return TrainingTime.read(run_dir / "training_time.json")


def test_epochs_share_the_limit_and_never_grow_past_steps_per_epoch():
    assert plan_steps_per_epoch(300.0, 15, 120, 0.4) == 50          # 15 x 50 x 0.4 s = 300 s
    assert plan_steps_per_epoch(300.0, 15, 120, 0.41) == 49         # rounded up: 301 s
    assert plan_steps_per_epoch(300.0, 15, 120, 0.01) == 120        # fast: all steps fit
    assert plan_steps_per_epoch(1.0, 15, 120, 9.0) == 1             # at least one step
    assert plan_steps_per_epoch(None, 15, 120, 9.0) == 120          # no limit: unchanged


def test_the_record_of_a_resumed_run_follows_the_epoch_it_resumes_at(tmp_path):
    record = TrainingTime(50, [10.0, 20.0, 30.0])
    assert [record.seconds_before(epoch) for epoch in range(5)] == [0.0, 10.0, 20.0, 30.0, 30.0]
    record.end_epoch(2, 28.0)  # resumed at epoch 3 (a backup one epoch older than the record)
    assert record.epoch_ends == [10.0, 20.0, 28.0]
    record.end_epoch(5, 40.0)  # a gap is filled with the time before it
    assert record.epoch_ends == [10.0, 20.0, 28.0, 28.0, 28.0, 40.0]
    path = record.write(tmp_path / "training_time.json")
    assert json.loads(path.read_text()) == {"steps_per_epoch": 50,
                                            "epoch_ends": [10.0, 20.0, 28.0, 28.0, 28.0, 40.0]}
    assert TrainingTime.read(path) == record
    assert sorted(p.name for p in tmp_path.iterdir()) == ["training_time.json"]  # no temporary
    path.write_text("{not json")
    assert TrainingTime.read(path) is None


def test_the_budget_counts_steps_not_validation_and_continues_a_record(tmp_path):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.stop_training = False
    ticks = iter([100.0, 102.0, 103.0, 150.0, 151.0, 154.0])
    budget = TimeBudget(10.0, TrainingTime(4, [3.0, 5.0]), tmp_path / "t.json",
                        clock=lambda: next(ticks))
    budget.set_model(model)
    budget.on_epoch_begin(2)            # resumed after epoch 2: 5 s so far; t = 100
    budget.on_train_batch_end(0)        # t = 102: 7 s
    budget.on_train_batch_end(1)        # t = 103: 8 s
    budget.on_epoch_end(2)              # validation after t = 103 is not counted
    assert TrainingTime.read(tmp_path / "t.json").epoch_ends == [3.0, 5.0, 8.0]
    assert not model.stop_training
    budget.on_epoch_begin(3)            # t = 150
    budget.on_train_batch_end(0)        # t = 151: 9 s
    assert not model.stop_training and budget.seconds_left == pytest.approx(1.0)
    budget.on_train_batch_end(1)        # t = 154: 12 s, the limit passed
    assert model.stop_training and budget.stopped_at == (4, 2)
    budget.on_epoch_end(3)              # Keras still ends (validates, saves) the epoch
    assert TrainingTime.read(tmp_path / "t.json").epoch_ends == [3.0, 5.0, 8.0, 12.0]


def test_the_learning_rate_follows_the_limit_whatever_the_step_count():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="mse")
    model.optimizer.build(model.trainable_variables)
    clock = [0.0]
    budget = TimeBudget(600.0, clock=lambda: clock[0])
    decay = CosineDecayOverBudget(0.001, total_steps=1800, budget=budget)
    for callback in (budget, decay):
        callback.set_model(model)

    def rate_after(seconds, steps):
        clock[0] = seconds
        model.optimizer.iterations.assign(steps)
        budget.on_train_batch_end(0)
        decay.on_train_batch_end(0)
        return float(model.optimizer.learning_rate)

    budget.on_epoch_begin(0)
    decay.on_epoch_begin(0)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.001)
    assert rate_after(300.0, 3) == pytest.approx(0.0005, rel=1e-3)     # half the time: half
    assert rate_after(150.0, 40) == pytest.approx(0.001 * (1 + np.cos(np.pi / 4)) / 2)
    assert rate_after(150.0, 1350) == pytest.approx(0.001 * (1 + np.cos(0.75 * np.pi)) / 2)
    assert rate_after(600.0, 100) == pytest.approx(0.0, abs=1e-12)     # time is up
    assert run_progress(900, 1800) == 0.5 and cosine_decay(1.0, 0.5) == pytest.approx(0.5)


def test_without_a_limit_the_rates_are_keras_cosine_decay():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.optimizer.build(model.trainable_variables)
    decay = CosineDecayOverBudget(0.1, total_steps=40, budget=TimeBudget())
    decay.set_model(model)
    reference = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=40)
    for step in (0, 7, 20, 39, 40, 55):
        model.optimizer.iterations.assign(step)
        decay.on_train_batch_end(0)
        assert float(model.optimizer.learning_rate) == pytest.approx(float(reference(step)),
                                                                     abs=1e-7)  # float32


def test_a_run_slower_than_measured_stops_at_the_limit_validated_checkpointed_and_exported(
        tmp_path, monkeypatch, capsys):
    _measured(monkeypatch, 1e-6)  # optimistic: epochs of all 100000 steps; only time can stop
    config = TrainConfig(**TINY, epochs=3, steps_per_epoch=100_000, time_limit=0.05,
                         run_dir=str(tmp_path / "run"))
    result = train(config, verbose=0)

    assert capsys.readouterr().out == ""  # verbose=0: not a line
    assert result.stop_reason == "time_limit" and result.steps_per_epoch == 100_000
    assert result.epochs_done == 1 and 1 <= result.steps < 100_000
    assert result.stopped == (f"time limit of 3 s reached after {result.steps} steps "
                              "(epoch 1 of 3)")
    assert len(result.history["loss"]) == 1 and "val_object_f1" in result.history  # validated
    record = _record(tmp_path / "run")
    assert record.epoch_ends == [pytest.approx(result.training_seconds)]
    assert 3.0 <= result.training_seconds < 3.0 + 60.0  # the limit, plus its last step
    assert (tmp_path / "run" / "checkpoints" / "best.keras").is_file()
    assert result.best["epoch"] == 1
    assert result.export is not None and (result.export / "saved_model.pb").is_file()
    assert result.cells is not None
    assert not (tmp_path / "run" / "backup").exists()  # a finished run
    assert float(result.model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-12)


def test_steps_are_timed_only_for_a_limit_or_the_announcement(tmp_path, monkeypatch, capsys):
    # (the announcement: test_a_run_whose_epochs_end_first_says_so)
    timed = []
    monkeypatch.setattr("keras_unet.training.run.measure_seconds_per_step",
                        lambda model, dataset: timed.append(1) or 1e-3)
    run = {**TINY, "epochs": 1, "steps_per_epoch": 2, "export": False}
    silent = train({**run, "run_dir": str(tmp_path / "silent")}, verbose=0)
    assert timed == [] and silent.steps == 2  # nobody reads the estimate, nothing to plan
    assert _record(tmp_path / "silent").steps_per_epoch == 2
    train({**run, "time_limit": 5, "run_dir": str(tmp_path / "limited")}, verbose=0)
    assert timed == [1] and capsys.readouterr().out == ""  # the limit needs the speed


def test_epochs_are_shortened_to_spread_over_the_limit(tmp_path):
    config = TrainConfig(**TINY, epochs=3, steps_per_epoch=100_000, time_limit=0.05,
                         run_dir=str(tmp_path / "run"), export=False)
    result = train(config, verbose=0)
    record = _record(tmp_path / "run")
    assert 1 <= record.steps_per_epoch < 100_000 == config.steps_per_epoch
    assert result.steps_per_epoch == record.steps_per_epoch
    assert result.stop_reason in ("time_limit", "epochs") and 1 <= result.epochs_done <= 3
    epoch_seconds = np.diff([0.0] + record.epoch_ends)
    if result.stop_reason == "epochs":
        assert result.epochs_done == 3 and result.steps == 3 * record.steps_per_epoch
    else:
        assert result.training_seconds >= 3.0
    assert result.training_seconds <= 3.0 + epoch_seconds.max() + 1.0


def test_a_run_whose_epochs_end_first_says_so(tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text("synthetic_images: 3\n")
    assert main(["train", "--config", str(tmp_path / "tiny.yaml"), "--run-dir",
                 str(tmp_path / "run"), "--epochs", "2", "--steps-per-epoch", "3",
                 "--time-limit", "10", "--batch-size", "2", "--tile-size", "92", "--depth", "2",
                 "--filters", "2", "--mixed-precision", "off", "--val-fraction", "0.34",
                 "--no-export"]) == 0
    out = capsys.readouterr().out
    expected = [line for line in out.splitlines() if "of training expected" in line]
    assert len(expected) == 1 and expected[0].startswith("unet train: about ")
    assert "per step over steps 5-9; limit 10 min)" in expected[0]
    stopped = [line for line in out.splitlines() if line.startswith("Stopped:")]
    assert len(stopped) == 1 and stopped[0].startswith("Stopped:         all 2 epochs done in ")
    assert stopped[0].endswith(" (6 steps)")
    assert _record(tmp_path / "run").steps_per_epoch == 3  # fast enough: not shortened


class _Interrupted(Exception):
    """Stands for a kill after an epoch's backup was written."""


def test_an_interrupted_run_resumes_within_the_same_limit(tmp_path, monkeypatch):
    # Epochs of 100 steps (a measured speed that fits 1000 x 99.5 steps in the limit), so many
    # that only the 6 s limit can end the run, on a clock of 0.02 s per step: 2 s per epoch;
    # interrupted after the second epoch's backup.
    _measured(monkeypatch, 6.0 / (1000 * 99.5))
    _ticking(monkeypatch, 0.02)
    config = TrainConfig(**TINY, epochs=1000, steps_per_epoch=100_000, time_limit=0.1,
                         run_dir=str(tmp_path / "run"), export=False)
    panel_end = ValidationPanel.on_epoch_end

    def interrupt_after_epoch_2(self, epoch, logs=None):
        panel_end(self, epoch, logs)
        if epoch == 1:
            raise _Interrupted

    monkeypatch.setattr(ValidationPanel, "on_epoch_end", interrupt_after_epoch_2)
    with pytest.raises(_Interrupted):
        train(config, verbose=0)
    first = _record(tmp_path / "run")
    assert first.steps_per_epoch == 100 and len(first.epoch_ends) == 2
    assert (tmp_path / "run" / "backup").is_dir()

    monkeypatch.setattr(ValidationPanel, "on_epoch_end", panel_end)
    _measured(monkeypatch, 1e-6)  # a resumed run keeps the epochs it started with
    result = train(config, verbose=0)
    record = _record(tmp_path / "run")
    assert result.resumed and result.stop_reason == "time_limit"
    assert record.steps_per_epoch == 100 == result.steps_per_epoch
    assert record.epoch_ends[:2] == first.epoch_ends  # continued, not started again
    assert len(result.history["loss"]) == result.epochs_done - 2  # only the epochs left
    epoch_seconds = np.diff([0.0] + record.epoch_ends)
    assert 6.0 <= result.training_seconds <= 6.0 + epoch_seconds.max()
    assert result.training_seconds == pytest.approx(record.epoch_ends[-1])
    # steps counted over both runs: all epochs but the one the limit cut are whole
    assert (result.epochs_done - 1) * 100 < result.steps <= result.epochs_done * 100
    assert not (tmp_path / "run" / "backup").exists()


def test_multi_worker_training_refuses_a_time_limit_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker",
                                                                        "index": 0}}))
    with pytest.raises(ValueError, match="^time_limit works with one worker only"):
        train(TrainConfig(**TINY, time_limit=5, run_dir=str(tmp_path / "run")), verbose=0)
    assert not (tmp_path / "run").exists()


def test_the_em_recipe_for_cpus_without_bfloat16_runs_as_typed(tmp_path, em_folder):
    """training/README.md's `unet train --data em/ --padding same --tile-size 104
    --steps-per-epoch 200 --time-limit 5` as a user types it (on three synthetic images, its
    epochs shortened so they end first): it trains and exports a same-padded network, and says
    the epochs, not the limit, ended it."""
    import subprocess
    import sys
    from pathlib import Path

    data = em_folder(3, size=128)
    run_dir = tmp_path / "run"
    unet = str(Path(sys.executable).with_name("unet"))
    recipe = ["--padding", "same", "--tile-size", "104", "--steps-per-epoch", "200",
              "--time-limit", "5"]
    shortened = ["--epochs", "1", "--steps-per-epoch", "2"]  # the last of a repeated option wins
    done = subprocess.run([unet, "train", "--data", str(data), *recipe, *shortened,
                           "--run-dir", str(run_dir)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    stopped = [line for line in done.stdout.splitlines() if line.startswith("Stopped:")]
    assert len(stopped) == 1 and "epoch done in" in stopped[0], done.stdout
    config = (run_dir / "config.yaml").read_text()
    assert "padding: same" in config and "tile_size: 104" in config and "time_limit: 5" in config
    assert "steps_per_epoch: 2" in config
    model = keras.models.load_model(run_dir / "checkpoints" / "best.keras", compile=False)
    assert model.get_config()["padding"] == "same"
    assert any((run_dir / "export").iterdir())
