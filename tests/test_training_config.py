"""TrainConfig: YAML in and out, command-line overrides, and clear refusals of bad values."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from keras_unet.cli import main
from keras_unet.cli.train import OPTIONS, add_parser, overrides
from keras_unet.training import TrainConfig, load_config
from keras_unet.training.config import check_tile_size

TRAINING = Path(__file__).resolve().parents[1] / "training"


def _write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_yaml_round_trip_gives_an_equal_config(tmp_path):
    config = TrainConfig(data="some/folder", epochs=7, learning_rate=3e-4, elastic=False,
                         padding="same", tile_size=128, depth=4)
    assert load_config(_write(tmp_path, config.to_yaml())) == config


def test_yaml_keys_left_out_keep_the_defaults_and_numbers_may_be_strings(tmp_path):
    config = load_config(_write(tmp_path, "epochs: 3\nlearning_rate: 1e-3\n"))
    assert (config.epochs, config.learning_rate) == (3, 0.001)
    assert dataclasses.replace(config, epochs=TrainConfig().epochs,
                               learning_rate=TrainConfig().learning_rate) == TrainConfig()


@pytest.mark.parametrize("key, suggestion", [("epoch", "epochs"), ("learnig_rate", "learning_rate"),
                                             ("tilesize", "tile_size")])
def test_unknown_key_is_named_with_the_closest_known_one(tmp_path, key, suggestion):
    path = _write(tmp_path, f"{key}: 3\n")
    with pytest.raises(ValueError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: unknown key {key!r}; did you mean {suggestion!r}?"


def test_unknown_key_without_a_close_match_lists_the_known_keys(tmp_path):
    with pytest.raises(ValueError, match="unknown key 'zzz'; known keys: data, "):
        load_config(_write(tmp_path, "zzz: 1\n"))


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, "epochs must be >= 1, got 0"),
    ({"batch_size": -2}, "batch_size must be >= 1, got -2"),
    ({"learning_rate": 0.0}, "learning_rate must be > 0"),
    ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
    ({"val_fraction": 1.0}, r"val_fraction must be in \[0, 1\)"),
    ({"num_classes": 1}, "num_classes must be 2 .* or 3 .*, got 1"),
    ({"num_classes": 4}, "num_classes must be 2 .* or 3 .*, got 4"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of sgd, adam; got 'rmsprop'"),
    ({"mixed_precision": "fp8"}, "mixed_precision must be one of auto, off, float16, bfloat16"),
    ({"epochs": "many"}, "epochs must be an integer, got 'many'"),
    ({"epochs": 2.5}, "epochs must be an integer, got 2.5"),
    ({"elastic": "yes"}, "elastic must be true or false, got 'yes'"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"time_limit": 0}, r"time_limit must be a number of minutes > 0 .*, got 0.0"),
    ({"time_limit": -1.5}, "time_limit must be a number of minutes > 0"),
    ({"time_limit": float("nan")}, "time_limit must be a number of minutes > 0 .*, got nan"),
    ({"time_limit": "inf"}, "time_limit must be a number of minutes > 0 .*, got inf"),
    ({"time_limit": "abc"}, "time_limit must be a number, got 'abc'"),
    ({"time_limit": True}, "time_limit must be a number, got True"),
])
def test_out_of_range_values_are_refused_naming_the_key(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


@pytest.mark.parametrize("changes, message", [
    ({"tile_size": 125}, "tile_size: input size 125 does not fit a depth-3 U-Net .* 124 or 132"),
    ({"padding": "same", "tile_size": 100}, "tile_size: input size 100 is not divisible by"),
    ({"depth": 4, "tile_size": 196}, "tile_size 196 is under the smallest tile of a depth-4 "
     r"network with valid padding, 204 px \(one 16 px step of output, which validation and "
     r"prediction tiles advance by\); use at least 204, or 284 for the default's 100 px of "
     r"output\.$"),
    ({"tile_size": 7}, "tile_size 7 is under the smallest tile of a depth-3 network .*; use "
     r"at least 100, or 188 for"),
])
def test_a_2d_tile_the_network_cannot_tile_with_is_refused_naming_the_key(changes, message):
    with pytest.raises(ValueError, match=message):
        check_tile_size(TrainConfig(**changes).for_images())


@pytest.mark.parametrize("depth, padding, tile", [(2, "valid", 140), (3, "valid", 188),
                                                  (4, "valid", 284), (3, "same", 104)])
def test_a_default_2d_tile_gives_the_defaults_100_px_of_output_at_any_depth(depth, padding,
                                                                            tile):
    config = TrainConfig(depth=depth, padding=padding).for_images()
    assert config.tile_size == tile
    check_tile_size(config)
    assert TrainConfig(depth=depth, padding=padding, tile_size=232).for_images().tile_size == 232


def test_a_volume_tile_is_not_held_to_the_2d_rules():
    config = TrainConfig(ndim=3, tile_size=60)  # the 3D demo's tile, under 2D depth 3's 100 px
    assert config.for_volumes().tile_size == 60


def test_not_a_mapping_and_not_yaml_and_missing_file_are_refused(tmp_path):
    with pytest.raises(ValueError, match="expected a mapping of keys to values, got list"):
        load_config(_write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ValueError, match="is not valid YAML"):
        load_config(_write(tmp_path, "epochs: [1\n"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")



def test_a_key_given_twice_is_refused_not_the_last_one_taken(tmp_path, capsys):
    from keras_unet.cli import main

    config = _write(tmp_path, "epochs: 3\nsteps_per_epoch: 2\nepochs: 4\n")
    assert main(["train", "--config", str(config)]) == 2
    assert capsys.readouterr().err == (f"unet train: error: config file '{config}' is not valid "
                                       "YAML: key 'epochs' is given twice (again on line 3)\n")


def test_shipped_configs_load_and_the_demo_file_spells_out_the_defaults():
    assert load_config(TRAINING / "cpu_demo.yaml") == TrainConfig()
    paper = load_config(TRAINING / "paper.yaml")
    assert (paper.filters, paper.depth, paper.tile_size, paper.padding) == (64, 4, 572, "valid")
    assert (paper.optimizer, paper.momentum, paper.batch_size) == ("sgd", 0.99, 1)
    assert (paper.loss, paper.elastic, paper.dropout) == ("weighted_crossentropy", True, 0.5)


def test_every_cli_option_is_a_config_key_and_overrides_it():
    import argparse

    parser = add_parser(argparse.ArgumentParser().add_subparsers())
    names = {field.name for field in dataclasses.fields(TrainConfig)}
    assert {flag[2:].replace("-", "_") for flag, *_ in OPTIONS} <= names
    args = parser.parse_args(["--epochs", "2", "--learning-rate", "0.5", "--padding", "same",
                              "--val-fraction", "0.5"])
    assert overrides(args) == {"epochs": 2, "learning_rate": 0.5, "padding": "same",
                               "val_fraction": 0.5}


def test_cli_reports_bad_config_and_bad_values_in_one_line_with_exit_2(tmp_path, capsys):
    path = _write(tmp_path, "epoch: 3\n")
    assert main(["train", "--config", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"unet train: error: {path}: unknown key 'epoch'; did you mean 'epochs'?\n")
    assert main(["train", "--tile-size", "125", "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unet train: error: --tile-size: input size 125 does not")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text", ["time_limit: 0", "time_limit: -3", "time_limit: .nan",
                                  "time_limit: .inf", "time_limit: abc", "time_limit: 1e999"])
def test_a_bad_time_limit_in_yaml_is_refused_naming_the_key(tmp_path, text):
    path = _write(tmp_path, text + "\n")
    with pytest.raises(ValueError, match=f"^{path}: time_limit must be a number"):
        load_config(path)


def test_a_time_limit_in_yaml_is_minutes(tmp_path):
    config = load_config(_write(tmp_path, "time_limit: 2.5\n"))
    assert (config.time_limit, config.time_limit_seconds) == (2.5, 150.0)
    assert load_config(_write(tmp_path, config.to_yaml())) == config


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "inf"])
def test_a_bad_time_limit_on_the_command_line_is_one_line_exit_2_and_creates_nothing(
        tmp_path, value):
    command = [sys.executable, "-c", "import sys; from keras_unet.cli import main; "
               "sys.exit(main(sys.argv[1:]))", "train", "--time-limit", value]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("unet train: error: command line: --time-limit must be a "
                                  "number"), done.stderr
    assert value in done.stderr and len(done.stderr.splitlines()) == 1
    assert done.stdout == "" and list(tmp_path.iterdir()) == []


def test_a_network_this_machine_cannot_train_is_refused_in_one_line_before_any_work(tmp_path):
    unet = str(Path(sys.executable).with_name("unet"))
    result = subprocess.run([unet, "train", "--depth", "10", "--run-dir", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    [line] = [line for line in result.stderr.splitlines() if "error:" in line]
    assert line.startswith("unet train: error: --depth 10 with 16 filters has about 8.0 billion "
                           "weights"), line
    assert not (tmp_path / "run").exists()
