"""The command line on volumes, end to end on synthetic 3D nuclei: train, then predict, evaluate
and export as `unet train` prints them; and the bad input of volumes, one line each, nothing
written."""

import re
import shlex

import keras
import numpy as np
import pytest
import tifffile

from keras_unet import build_unet
from keras_unet.cli import main
from keras_unet.data import synthetic_volumes
from keras_unet.io.images import write_stack
from keras_unet.io.tiff import read_volume


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`unet train --ndim 3` on three synthetic volumes, one held out, a tiny network."""
    folder = tmp_path_factory.mktemp("volumes")
    config = folder / "tiny.yaml"
    config.write_text("synthetic_images: 3\nfilters: 2\ndepth: 1\ntile_size: 28\n"
                      "batch_size: 2\nepochs: 1\nsteps_per_epoch: 2\nval_fraction: 0.34\n"
                      "mixed_precision: 'off'\n")
    return folder, folder / "run", config


def test_train_predict_evaluate_export_volumes(trained, capsys):
    folder, run, config = trained
    assert main(["train", "--ndim", "3", "--config", str(config), "--run-dir", str(run),
                 "--spacing", "2,1,1"]) == 0
    out = capsys.readouterr().out
    assert "volumes, voxels 2x1x1" in out
    commands = dict(re.findall(r"^(Predict|Evaluate): +unet (.*)$", out, re.MULTILINE))
    best = run / "checkpoints" / "best.keras"
    assert keras.models.load_model(best).get_config()["spacing"] == [2.0, 1.0, 1.0]
    [held_out] = sorted((run / "validation" / "images").iterdir())
    volume, spacing = read_volume(held_out)
    assert volume.ndim == 3 and spacing == (2.0, 1.0, 1.0)

    assert "--overlays" not in commands["Predict"]
    predict = shlex.split(commands["Predict"]) + ["--instances", "--probabilities"]
    assert main(predict) == 0
    predictions = run / "predictions"
    mask, mask_spacing = read_volume(predictions / held_out.name)
    cells = tifffile.imread(predictions / held_out.name.replace(".tif", "_instances.tif"))
    probabilities = tifffile.imread(predictions / held_out.name.replace(
        ".tif", "_probabilities.tif"))
    assert mask.shape == cells.shape == volume.shape and mask_spacing == (2.0, 1.0, 1.0)
    assert probabilities.shape == (volume.shape[0], 2, *volume.shape[1:])  # ZCYX
    assert "no overlay" not in capsys.readouterr().err  # train prints no --overlays for volumes

    assert main(shlex.split(commands["Evaluate"])) == 0
    report = (run / "evaluation" / "evaluation.csv").read_text()
    assert "seg" in report.splitlines()[0]

    assert main(["export", "--model", str(best), "--out", str(folder / "served"),
                 "--ndim", "3"]) == 0
    assert (folder / "served" / "1" / "saved_model.pb").is_file()
    capsys.readouterr()
    assert main(["export", "--model", str(best), "--out", str(folder / "other"),
                 "--ndim", "2"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"unet export: error: --ndim 2, but --model {str(best)!r} is a 3D U-Net (volumes)."]
    assert not (folder / "other").exists()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    build_unet((None, None, 1), 2, filters=2, depth=1).save(folder / "image.keras")
    build_unet((None, None, None, 1), 2, filters=2, depth=1).save(folder / "volume.keras")
    [sample] = synthetic_volumes(1, size=24, depth=10)
    write_stack(folder / "v.tif", sample.image, (2.0, 0.5, 0.5))
    tifffile.imwrite(folder / "plane.tif", sample.image[0])
    return folder


def _one_line_error(capsys, command, argv, *parts):
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"unet {command}: error: "), err
    for part in parts:
        assert part in err[0], err[0]


def test_a_2d_model_given_a_volume_and_the_reverse(models, capsys, tmp_path):
    out = tmp_path / "out"
    _one_line_error(capsys, "predict", ["predict", "--model", str(models / "image.keras"),
                                        "--input", str(models / "v.tif"), "--output", str(out)],
                    "v.tif' is a volume (a TIFF stack)", "is a 2D U-Net")
    _one_line_error(capsys, "predict", ["predict", "--model", str(models / "volume.keras"),
                                        "--input", str(models / "plane.tif"), "--output",
                                        str(out)], "plane.tif' is a 2D image", "3D U-Net")
    _one_line_error(capsys, "predict", ["predict", "--model", str(models / "image.keras"),
                                        "--input", str(models / "plane.tif"), "--output",
                                        str(out), "--ndim", "3"], "--ndim 3", "2D U-Net")
    assert not out.exists()


@pytest.mark.parametrize("spacing, message", [("0,1,1", "--spacing must be positive"),
                                              ("-1,1,1", "--spacing must be positive"),
                                              ("1,1", "--spacing must be three numbers")])
def test_a_bad_spacing_is_one_line(models, capsys, tmp_path, spacing, message):
    _one_line_error(capsys, "predict", ["predict", "--model", str(models / "volume.keras"),
                                        "--input", str(models / "v.tif"), "--output",
                                        str(tmp_path / "out"), f"--spacing={spacing}"], message)
    _one_line_error(capsys, "train", ["train", "--ndim", "3", f"--spacing={spacing}",
                                      "--run-dir", str(tmp_path / "run")], message)
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()


def test_a_stack_whose_mask_has_another_depth(capsys, tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    [sample] = synthetic_volumes(1, size=24, depth=10)
    write_stack(data / "images" / "a.tif", sample.image)
    write_stack(data / "masks" / "a.tif", sample.labels[:8].astype(np.uint16))
    _one_line_error(capsys, "train", ["train", "--data", str(data), "--labels", "instances",
                                      "--run-dir", str(tmp_path / "run")],
                    "a.tif' has 10 planes of 24x24 but its mask", "has 8 planes of 24x24")
    assert not (tmp_path / "run").exists()


def test_a_tile_depth_the_network_cannot_take(capsys, tmp_path):
    _one_line_error(capsys, "train", ["train", "--ndim", "3", "--tile-depth", "3",
                                      "--run-dir", str(tmp_path / "run")],
                    "--tile-depth: input size 3 does not fit")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option, value, what", [
    ("--spacing", "1,2,2", "the voxel size of volumes (z,y,x)"),
    ("--tile-depth", "20", "the planes of volume tiles")])
def test_volume_options_for_2d_data_are_refused_not_ignored(capsys, tmp_path, option, value,
                                                            what):
    for data in ([], ["--data", str(_images_folder(tmp_path)), "--labels", "instances"]):
        _one_line_error(capsys, "train", ["train", *data, option, value, "--run-dir",
                                          str(tmp_path / "run")],
                        f"{option} is {what}; this run's data are 2D images.")
        assert not (tmp_path / "run").exists()


def _images_folder(tmp_path):
    from keras_unet.data import synthetic_cells
    from keras_unet.data.writers import save_samples

    save_samples(synthetic_cells(2, size=64), tmp_path / "images2d")
    return tmp_path / "images2d"


def test_a_one_plane_volume_is_mirrored_to_the_network_s_minimum(models, capsys, tmp_path):
    """Thinner than the smallest tile: mirrored at its faces as far as the network needs."""
    write_stack(tmp_path / "thin.tif", np.stack([tifffile.imread(models / "plane.tif")] * 2))
    assert main(["predict", "--model", str(models / "volume.keras"), "--input",
                 str(tmp_path / "thin.tif"), "--output", str(tmp_path / "out")]) == 0
    assert read_volume(tmp_path / "out" / "thin.tif")[0].shape == (2, 24, 24)


def test_a_stack_larger_than_memory_is_predicted_in_boxes(models, capsys, tmp_path,
                                                          monkeypatch):
    """Above STREAM_PIXELS voxels a stack is memory-mapped and predicted box by box: the same
    mask and probabilities as in memory."""
    from keras_unet.cli import predict

    argv = ["predict", "--model", str(models / "volume.keras"), "--input", str(models / "v.tif"),
            "--probabilities"]
    assert main([*argv, "--output", str(tmp_path / "whole")]) == 0
    monkeypatch.setattr(predict, "STREAM_PIXELS", 1000)
    assert main([*argv, "--output", str(tmp_path / "boxes"), "--instances"]) == 0
    assert "no instances" in capsys.readouterr().err
    for name in ("v.tif", "v_probabilities.tif"):
        whole, spacing = read_volume(tmp_path / "whole" / name)
        boxes, box_spacing = read_volume(tmp_path / "boxes" / name)
        np.testing.assert_allclose(boxes, whole, atol=1e-4)
        assert spacing == box_spacing == (2.0, 0.5, 0.5)
