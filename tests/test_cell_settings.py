"""The model carries its post-processing: the cell settings training chose travel with the
``.keras`` file, the SavedModel, the ONNX file and the bioimage.io package, and every way of
predicting uses them unless told otherwise."""

import json

import keras
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from keras_unet import build_unet, predict_tiled
from keras_unet.cli import main
from keras_unet.inference import load_network
from keras_unet.instances import instance_labels
from keras_unet.instances.settings import CellSettings, recorded_settings
from keras_unet.serving import export_for_serving, read_export_metadata
from keras_unet.serving.onnx_export import export_onnx
from keras_unet.training import train

RECORDED = CellSettings("watershed", 20)
"""Settings a default run would not give: another method and a larger cut-off."""


def _image():
    return np.random.default_rng(3).integers(0, 255, (48, 64)).astype("uint8")


def _model(cells=RECORDED):
    keras.utils.set_random_seed(0)  # an argmax of about half cells, half background
    model = build_unet((None, None, 1), 2, filters=4, depth=2)
    final = model.get_layer("final_conv")
    kernel, bias = final.get_weights()
    final.set_weights([np.random.default_rng(1).normal(0, 3, kernel.shape).astype("float32"),
                       bias])
    if cells is not None:
        model.record_cells(cells)
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(folder, model): the model as best.keras, and an image folder."""
    folder = tmp_path_factory.mktemp("cells")
    model = _model()
    model.save(folder / "best.keras")
    (folder / "in").mkdir()
    Image.fromarray(_image()).save(folder / "in" / "a.png")
    return folder, model


def _cells_with(model, **options):
    return instance_labels(predict_tiled(model, _image()), **options)


def test_the_settings_differ_enough_to_be_seen(saved):
    _, model = saved
    assert not np.array_equal(_cells_with(model, **RECORDED.options), _cells_with(model))


def test_a_saved_model_carries_them_and_the_python_api_uses_them(saved):
    folder, model = saved
    loaded = keras.models.load_model(folder / "best.keras", compile=False)
    assert loaded.get_config()["cells"] == RECORDED.to_json()
    probabilities = predict_tiled(loaded, _image())
    np.testing.assert_array_equal(instance_labels(probabilities, model=loaded),
                                  instance_labels(probabilities, **RECORDED.options))
    np.testing.assert_array_equal(instance_labels(probabilities, model=loaded, min_size=0),
                                  instance_labels(probabilities, method="watershed", min_size=0))
    network = load_network(folder / "best.keras")
    assert network.cells.options == RECORDED.options and network.cells.source == "the model"


def test_unet_predict_uses_them_says_so_and_a_flag_wins(saved, capsys):
    folder, model = saved
    out = folder / "predicted"
    assert main(["predict", "--model", str(folder / "best.keras"), "--input", str(folder / "in"),
                 "--output", str(out), "--instances"]) == 0
    assert "cells: method watershed, min_size 20 (from the model)" in capsys.readouterr().out
    np.testing.assert_array_equal(tifffile.imread(out / "a_instances.tif"),
                                  _cells_with(model, **RECORDED.options))
    assert main(["predict", "--model", str(folder / "best.keras"), "--input", str(folder / "in"),
                 "--output", str(out), "--instances", "--min-size", "0", "--overwrite"]) == 0
    assert ("cells: method watershed, min_size 0 (from the command line; the rest from the "
            "model)") in capsys.readouterr().out
    np.testing.assert_array_equal(tifffile.imread(out / "a_instances.tif"),
                                  _cells_with(model, method="watershed", min_size=0))


def test_the_savedmodel_and_onnx_carry_them_and_predict_with_them(saved, capsys):
    folder, model = saved
    version = export_for_serving(model, folder / "served", warmup=False)
    assert read_export_metadata(version)["cells"] == RECORDED.to_json()
    onnx = export_onnx(model, folder / "unet.onnx")
    for path in (version, onnx):
        assert load_network(path).cells.options == RECORDED.options
    out = folder / "from_served"
    assert main(["predict", "--model", str(version), "--input", str(folder / "in"),
                 "--output", str(out), "--instances"]) == 0
    assert "(from the model)" in capsys.readouterr().out
    served = tifffile.imread(out / "a_instances.tif")
    assert served.max() == _cells_with(model, **RECORDED.options).max()


def test_zarr_instances_use_them(saved, capsys):
    folder, model = saved
    zarr.create_array(folder / "a.zarr", shape=(48, 64), chunks=(32, 32),
                      dtype="uint8")[:] = _image()
    assert main(["predict", "--model", str(folder / "best.keras"), "--input",
                 str(folder / "a.zarr"), "--output", str(folder / "a.ome.zarr"),
                 "--instances", "--block-size", "32"]) == 0
    assert "(from the model)" in capsys.readouterr().out
    cells = zarr.open_group(folder / "a.ome.zarr", mode="r")["labels/instances/0"][:]
    assert cells.max() == _cells_with(model, **RECORDED.options).max()


def test_models_without_a_record_keep_todays_defaults(tmp_path):
    legacy = load_network("tests/data/legacy_unet.keras")  # saved by keras_unet 0.2
    assert legacy.cells == CellSettings() and legacy.notes == ()
    _model(cells=None).save(tmp_path / "plain.keras")
    assert load_network(tmp_path / "plain.keras").cells == CellSettings()


@pytest.mark.parametrize("record, reason", [
    ({"version": 99, "method": "auto", "min_size": 5}, "of version 99, written by a newer"),
    ({"version": 1, "method": "lasso", "min_size": 5}, "malformed"),
    ("thirty", "not a record of keras_unet's"),
])
def test_unreadable_settings_are_named_in_one_line_and_the_defaults_used(tmp_path, capsys,
                                                                         record, reason):
    model = _model(cells=None)
    model.arguments["cells"] = record
    model.save(tmp_path / "odd.keras")
    Image.fromarray(_image()).save(tmp_path / "a.png")
    assert main(["predict", "--model", str(tmp_path / "odd.keras"), "--input",
                 str(tmp_path / "a.png"), "--output", str(tmp_path / "out"),
                 "--instances"]) == 0
    captured = capsys.readouterr()
    [note] = [line for line in captured.err.splitlines() if "note:" in line]
    assert str(tmp_path / "odd.keras") in note and reason in note and "using the defaults" in note
    assert "cells: method auto, min_size 10 (from the defaults)" in captured.out
    assert recorded_settings(record, "odd.keras")[0] == CellSettings()


TINY = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "tile_size": 92, "depth": 2,
        "filters": 4, "mixed_precision": "off"}


def test_fine_tuning_starts_from_what_the_model_carries(tmp_path):
    data = tmp_path / "four"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    rng = np.random.default_rng(0)
    for index in range(4):
        classes = np.repeat(np.repeat(rng.integers(0, 4, (8, 8)), 16, 0), 16, 1)
        Image.fromarray((classes * 50 + rng.integers(0, 20, classes.shape)).astype("uint8")
                        ).save(data / "images" / f"{index}.png")
        Image.fromarray(classes.astype("uint8")).save(data / "masks" / f"{index}.png")
    best = tmp_path / "best.keras"
    build_unet((None, None, 1), 4, filters=4, depth=2, class_names=("bg", "a", "b", "c"),
               labels="semantic").save(best)
    # the command a user types: semantic masks of 4 classes, no --num-classes given
    assert main(["train", "--data", str(data), "--labels", "semantic", "--init", str(best),
                 "--run-dir", str(tmp_path / "second"), "--epochs", "1", "--steps-per-epoch",
                 "1", "--batch-size", "2", "--tile-size", "92", "--depth", "2", "--filters",
                 "4", "--mixed-precision", "off"]) == 0
    second = keras.models.load_model(tmp_path / "second" / "checkpoints" / "best.keras",
                                     compile=False)
    assert second.get_config()["num_classes"] == 4
    assert second.class_names == ("bg", "a", "b", "c") and second.layout.labels == "semantic"


def test_cells_are_chosen_again_on_the_new_validation_images_else_inherited(tmp_path):
    cells = tmp_path / "cells.keras"
    _model(cells=CellSettings("components", 30)).save(cells)
    kept = train({**TINY, "synthetic_images": 3, "init": str(cells), "val_fraction": 0,
                  "run_dir": str(tmp_path / "kept"), "export": False}, verbose=0)
    assert kept.cells.options == {"method": "components", "min_size": 30}
    saved = keras.models.load_model(kept.run.checkpoints / "best.keras", compile=False)
    assert saved.get_config()["cells"] == CellSettings("components", 30).to_json()
    chosen = train({**TINY, "synthetic_images": 3, "init": str(cells), "val_fraction": 0.34,
                    "run_dir": str(tmp_path / "chosen")}, verbose=0)
    assert chosen.cells.source == "the validation images" and chosen.cell_scores
    export = json.loads((chosen.export / "assets.extra" / "keras_unet.json").read_text())
    assert export["cells"] == chosen.cells.to_json()
