"""Run directories: new, resumed, refused, or moved aside; never an earlier run destroyed."""

import datetime

import pytest

from keras_unet.training import TrainConfig, load_config
from keras_unet.training.run_dir import prepare_run_dir

NOW = datetime.datetime(2025, 1, 2, 3, 4, 5)


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _interrupted_run(path, config):
    prepare_run_dir(config)
    (path / "backup").mkdir(exist_ok=True)
    (path / "backup" / "training_metadata.json").write_text('{"epoch": 2}')
    (path / "checkpoints").mkdir()
    (path / "checkpoints" / "best.keras").write_bytes(b"model")


def test_new_run_dir_gets_the_resolved_config(tmp_path):
    config = TrainConfig(run_dir=str(tmp_path / "a" / "run"), epochs=3)
    run = prepare_run_dir(config)
    assert not run.resume and run.path == tmp_path / "a" / "run"
    assert load_config(run.path / "config.yaml") == config


def test_same_config_with_a_backup_resumes(tmp_path):
    config = TrainConfig(run_dir=str(tmp_path / "run"))
    _interrupted_run(tmp_path / "run", config)
    assert prepare_run_dir(config).resume


def test_different_run_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "run"
    _interrupted_run(path, TrainConfig(run_dir=str(path), epochs=5))
    before = _snapshot(path)
    with pytest.raises(FileExistsError) as error:
        prepare_run_dir(TrainConfig(run_dir=str(path), epochs=6, filters=8))
    message = str(error.value)
    assert "holds a different run (epochs: 5 there, 6 now; filters: 16 there, 8 now)" in message
    assert "--overwrite" in message
    assert _snapshot(path) == before


def test_a_run_killed_before_its_first_epoch_ended_resumes(tmp_path):
    config = TrainConfig(run_dir=str(tmp_path / "run"))
    assert prepare_run_dir(config).backup.is_dir()  # until training ends
    assert prepare_run_dir(config).resume


def test_finished_run_of_the_same_config_is_refused(tmp_path):
    config = TrainConfig(run_dir=str(tmp_path / "run"))
    prepare_run_dir(config)
    (tmp_path / "run" / "checkpoints").mkdir()
    (tmp_path / "run" / "backup").rmdir()  # as training's end removes it
    with pytest.raises(FileExistsError, match="holds a finished run of the same config"):
        prepare_run_dir(config)


def test_overwrite_moves_the_earlier_run_aside_whole(tmp_path):
    path = tmp_path / "run"
    _interrupted_run(path, TrainConfig(run_dir=str(path), epochs=5))
    before = _snapshot(path)
    run = prepare_run_dir(TrainConfig(run_dir=str(path), epochs=6), overwrite=True, now=NOW)
    assert run.replaced == tmp_path / "run.replaced-20250102-030405"
    assert _snapshot(run.replaced) == before
    assert not run.resume and sorted(p.name for p in path.iterdir()) == ["backup", "config.yaml"]
    assert not any(run.backup.iterdir())


def test_foreign_folder_and_file_are_refused(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.png").write_bytes(b"png")
    with pytest.raises(FileExistsError, match="holds no keras_unet run"):
        prepare_run_dir(TrainConfig(run_dir=str(tmp_path / "photos")))
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        prepare_run_dir(TrainConfig(run_dir=str(tmp_path / "file")))


def test_default_run_dir_is_timestamped_and_the_same_command_resumes_it(tmp_path):
    config = TrainConfig(epochs=2)
    first = prepare_run_dir(config, runs_root=tmp_path, now=NOW)
    assert first.path == tmp_path / "20250102-030405" and not first.resume
    prepare_run_dir(config.replace(run_dir=str(tmp_path / "isbi")))  # a run you named
    again = prepare_run_dir(config, runs_root=tmp_path, now=NOW + datetime.timedelta(hours=1))
    assert again.path == first.path and again.resume  # not hidden by isbi, sorted after it
    other = prepare_run_dir(config.replace(epochs=3), runs_root=tmp_path, now=NOW)
    assert other.path == tmp_path / "20250102-030405-1" and not other.resume


@pytest.mark.parametrize("typed", ["", ".", "./", ".."])
def test_the_current_folder_or_one_above_it_is_refused_as_a_run_dir(tmp_path, monkeypatch,
                                                                    capsys, typed):
    """``--overwrite`` would move the folder the command runs in aside (it was an internal
    error: "PosixPath('.') has an empty name")."""
    from keras_unet.cli import main

    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path / "work")
    assert main(["train", "--run-dir", typed, "--epochs", "1", "--steps-per-epoch", "1"]) == 2
    assert capsys.readouterr().err == (f"unet train: error: run dir {typed!r} is the current "
                                       "folder or holds it: give the run a folder of its own "
                                       "(e.g. runs/mine).\n")
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["notes.txt"]
