"""Holding out validation data: whole images, or a band of the one image a user has."""

import keras
import numpy as np
import pytest

from keras_unet import predict_tiled
from keras_unet.data import Sample, load_samples, make_dataset, synthetic_cells
from keras_unet.evaluation import best_cell_settings
from keras_unet.training import split_samples, train


def test_one_image_holds_out_a_band_that_training_tiles_never_touch():
    [sample] = synthetic_cells(1, size=128, seed=3)
    train_set, val_set = split_samples([sample], 0.25)
    [train_part], [val_part] = train_set, val_set
    np.testing.assert_array_equal(train_part.image, sample.image[:96])
    np.testing.assert_array_equal(val_part.image, sample.image[96:])
    np.testing.assert_array_equal(val_part.labels, sample.labels[96:])
    # Mark the held-out band: no pixel of any training tile (context included) may show it.
    marked = sample.image.astype(np.float32)
    marked[96:] = 1e6
    [marked_train], _ = split_samples([Sample(marked, sample.labels, sample.path)], 0.25)
    tiles = make_dataset([marked_train], tile_size=92, batch_size=4, depth=2, seed=0)
    for images, _, _ in tiles.take(25):
        assert float(np.abs(images.numpy()).max()) < 1e5


def test_wide_image_is_cut_across_columns_and_tiny_ones_refused():
    wide = Sample(np.zeros((8, 30)), np.zeros((8, 30), "int32"), "w.png")
    [train_part], [val_part] = split_samples([wide], 0.2)
    assert train_part.image.shape == (8, 24) and val_part.image.shape == (8, 6)
    line = Sample(np.zeros((1, 1)), np.zeros((1, 1), "int32"), "dot.png")
    with pytest.raises(ValueError, match="dot.png.*cannot be cut"):
        split_samples([line], 0.2)


def test_val_fraction_zero_holds_out_nothing():
    samples = synthetic_cells(2, size=32)
    assert split_samples(samples, 0.0) == (samples, [])


def _one_image_dataset(folder):
    from keras_unet.data import save_samples

    save_samples(synthetic_cells(1, size=160, seed=1), folder)
    return folder


def test_train_on_one_annotated_image_end_to_end(tmp_path, capsys):
    data = _one_image_dataset(tmp_path / "one")
    result = train({"data": str(data), "labels": "instances", "run_dir": str(tmp_path / "run"),
                    "epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "tile_size": 92, "depth": 2,
                    "filters": 2, "val_fraction": 0.25, "mixed_precision": "off"}, verbose=2)
    status = capsys.readouterr().out
    assert "one labelled image, its rows 120-159 held out for validation" in status
    assert "val_loss" in result.history
    [image] = (result.validation / "images").iterdir()
    assert image.name == "synthetic_0_rows120-159.png"  # synthetic:0 of seed 1
    assert result.best["monitor"] == "val_loss"
    assert 0.0 <= result.best["logs"]["val_object_f1"] <= 1.0  # logged before the checkpoint
    best = keras.models.load_model(result.run.checkpoints / "best.keras", compile=False)
    validation = load_samples(result.validation, "instances")
    chosen, scores = best_cell_settings(  # the best model's cells of the held-out band
        [s.labels for s in validation], [predict_tiled(best, s.image) for s in validation])
    assert (result.cells.options, result.cell_scores) == (chosen.options, scores)
    assert best.arguments["cells"] == chosen.to_json()  # recorded in best.keras


def test_train_without_validation_keeps_the_last_epoch_as_best(tmp_path):
    result = train({"synthetic_images": 2, "run_dir": str(tmp_path / "run"), "epochs": 2,
                    "steps_per_epoch": 1, "batch_size": 2, "tile_size": 92, "depth": 2,
                    "filters": 2, "val_fraction": 0, "mixed_precision": "off"}, verbose=0)
    assert "val_loss" not in result.history and result.validation is None
    assert result.cells is None and result.cell_scores == {}  # nothing to choose them on
    assert result.best == {"monitor": None, "value": None, "epoch": 2,
                           "logs": result.best["logs"]}
    assert (result.run.checkpoints / "best.keras").is_file() and result.export is not None
