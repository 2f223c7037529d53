"""Fine-tuning (``init``): starts at the trained model's score; refuses other geometries."""

import keras
import numpy as np
import pytest

from keras_unet import build_unet
from keras_unet.data import load_samples, make_dataset, synthetic_cells
from keras_unet.losses import WeightedCrossentropy
from keras_unet.training import TrainConfig, load_config, train
from keras_unet.training.config import check_tile_size
from keras_unet.training.callbacks import FreezeEncoder, encoder_layers
from keras_unet.training.finetune import inherited_config, transfer_weights

TINY = {"synthetic_images": 3, "epochs": 1, "steps_per_epoch": 1, "batch_size": 2,
        "tile_size": 92, "depth": 2, "filters": 4, "dropout": 0.0, "val_fraction": 0.34,
        "mixed_precision": "off"}


def _validation_loss(model, tiles) -> float:
    model.compile(loss=WeightedCrossentropy())
    return float(model.evaluate(tiles, verbose=0))


def test_fine_tuning_starts_at_the_trained_models_validation_score(tmp_path):
    keras.utils.set_random_seed(1)
    trained = build_unet((None, None, 1), 2, filters=4, depth=2, dropout=0.0)
    trained.compile(keras.optimizers.Adam(0.02), WeightedCrossentropy())
    trained.fit(make_dataset(synthetic_cells(3), tile_size=92, batch_size=4, depth=2, seed=1,
                             augment=False), epochs=1, steps_per_epoch=15, verbose=0)
    trained.save(tmp_path / "cells.keras")
    result = train({**TINY, "run_dir": str(tmp_path / "run"), "learning_rate": 1e-9,
                    "init": str(tmp_path / "cells.keras"), "export": False}, verbose=0)
    tiles = make_dataset(load_samples(result.validation, "instances"), tile_size=92,
                         batch_size=2, depth=2, augment=False, shuffle=False, repeat=False)
    keras.utils.set_random_seed(TINY.get("seed", 0))  # what train() would have started from
    random = build_unet((None, None, 1), 2, filters=4, depth=2, dropout=0.0)
    started, trained_loss = result.history["val_loss"][0], _validation_loss(trained, tiles)
    assert started == pytest.approx(trained_loss, rel=0.01)
    assert _validation_loss(random, tiles) > 1.3 * trained_loss


def test_another_class_count_recreates_only_the_final_convolution():
    cells = build_unet((None, None, 1), 2, filters=4, depth=2)
    tissue = build_unet((None, None, 1), 4, filters=4, depth=2)
    fresh = tissue.get_layer("final_conv").get_weights()
    assert transfer_weights(cells, tissue) is True
    for layer in tissue.layers:
        if layer.weights and layer.name != "final_conv":
            source = cells.get_layer(layer.name).get_weights()
            for copied, original in zip(layer.get_weights(), source):
                np.testing.assert_array_equal(copied, original)
    for kept, before in zip(tissue.get_layer("final_conv").get_weights(), fresh):
        np.testing.assert_array_equal(kept, before)


def test_a_run_from_a_model_takes_the_geometry_it_leaves_at_the_defaults(tmp_path, capsys):
    build_unet((None, None, 1), 2, filters=4, depth=2).save(tmp_path / "small.keras")
    config = {key: value for key, value in TINY.items()
              if key not in ("filters", "depth", "tile_size")}
    result = train({**config, "run_dir": str(tmp_path / "run"), "export": False,
                    "init": str(tmp_path / "small.keras")})
    assert (result.config.filters, result.config.depth, result.config.padding) == (4, 2, "valid")
    assert result.config.tile_size == 140  # the default tile's 100 px of output, at depth 2
    assert ("a network of depth 2, 4 filters, valid padding, on 140 px tiles"
            in capsys.readouterr().out)
    with pytest.raises(ValueError, match=r"has filters 4 but .* has filters 8; .*pass --filters 4"):
        train({**config, "filters": 8, "run_dir": str(tmp_path / "other"),
               "init": str(tmp_path / "small.keras")}, verbose=0)


def test_the_documented_fine_tuning_command_runs_as_typed(tmp_path, em_folder):
    """training/README.md's `unet train --data more_cells/ --init runs/isbi/checkpoints/
    best.keras --freeze-encoder --patience 3 --learning-rate 1e-4`, typed where a run left a
    model of another width and depth than the defaults (its epochs shortened): the new network
    takes that geometry."""
    import re
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "training" / "README.md").read_text()
    typed = re.search(r"^unet train --data more_cells/ --init .*?(?<!\\)$", readme,
                      flags=re.M | re.S).group(0).replace("\\\n", " ")
    em_folder(4, size=128).rename(tmp_path / "more_cells")
    (tmp_path / "runs" / "isbi" / "checkpoints").mkdir(parents=True)
    build_unet((None, None, 1), 2, filters=4, depth=2).save(
        tmp_path / "runs" / "isbi" / "checkpoints" / "best.keras")
    shortened = ["--epochs", "1", "--steps-per-epoch", "2", "--tile-size", "92", "--no-export"]
    done = subprocess.run([str(Path(sys.executable).with_name("unet")),
                           *shlex.split(typed)[1:], *shortened, "--run-dir", "run"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "a network of depth 2, 4 filters, valid padding, on 92 px tiles" in done.stdout
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "filters: 4" in config and "depth: 2" in config and "freeze_encoder: true" in config
    assert "patience: 3" in config and "learning_rate: 0.0001" in config


def test_every_difference_is_named_at_once_with_the_options_that_match_it():
    paper = build_unet((None, None, 3), 2, filters=8, depth=3)
    with pytest.raises(ValueError) as refused:
        transfer_weights(paper, build_unet((None, None, 1), 2, filters=4, depth=2), "--init")
    assert str(refused.value) == (
        "--init model has depth 3, filters 8, channels 3 but the network to train has depth 2, "
        "filters 4, channels 1; fine-tuning needs the same ndim, depth, padding, filters, "
        "channels (pass --depth 3 --filters 8; train on images of 3 channel(s)).")


def test_bad_init_is_named_before_the_run_starts(tmp_path):
    build_unet((None, None, 1), 2, filters=4, depth=3).save(tmp_path / "deep.keras")
    (tmp_path / "notes.keras").write_text("not a model")
    (tmp_path / "notes.txt").write_text("not a model")  # no SavedModel or ONNX offered: --init
    for init, message in (("deep.keras", "init model has depth 3 but the network to train has "
                                         "depth 2"),
                          ("notes.keras", "--init '.*notes.keras' is not a Keras model: a "
                                          r"\.keras file is a zip archive and this file is not "
                                          r"one\.$"),
                          ("notes.txt", r"--init '.*notes.txt' is not a \.keras file; "
                                        "fine-tuning starts from one"),
                          ("none.keras", "init '.*none.keras' does not exist")):
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            train({**TINY, "run_dir": str(tmp_path / "run"), "init": str(tmp_path / init)},
                  verbose=0)
        assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="patience needs validation images"):
        train({**TINY, "patience": 2, "val_fraction": 0.0})
    with pytest.raises(ValueError, match="freeze_encoder needs init"):
        train({**TINY, "freeze_encoder": True})


def test_frozen_encoder_trains_only_the_expanding_path_in_its_epochs():
    model = build_unet((None, None, 1), 2, filters=4, depth=2, dropout=0.0)
    model.compile(keras.optimizers.Adam(0.01), WeightedCrossentropy())
    model.optimizer.build(model.trainable_variables)
    encoder = [layer for layer in encoder_layers(model) if layer.weights]
    snapshots = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(
        ([w.copy() for layer in encoder for w in layer.get_weights()],
         model.get_layer("final_conv").get_weights()[0].copy())))
    rng = np.random.default_rng(0)
    tiles = (rng.normal(size=(2, 44, 44, 1)).astype("float32"),
             rng.integers(0, 2, (2, 4, 4)).astype("int32"))
    start = [w.copy() for layer in encoder for w in layer.get_weights()]
    final = model.get_layer("final_conv").get_weights()[0].copy()
    model.fit(*tiles, epochs=2, batch_size=2, verbose=0,
              callbacks=[FreezeEncoder(1), record])
    (frozen, decoded), (unfrozen, _) = snapshots
    assert all(np.array_equal(a, b) for a, b in zip(start, frozen))  # epoch 1: encoder kept
    assert not np.array_equal(decoded, final)                          # ... decoder trained
    assert not all(np.array_equal(a, b) for a, b in zip(frozen, unfrozen))  # epoch 2: all


def test_the_default_tile_follows_a_2d_models_depth_and_a_volumes_stays_the_3d_demos():
    flat = build_unet((None, None, 1), 2, filters=4, depth=4)
    config = inherited_config(TrainConfig(data="d", init="m.keras"), flat)
    assert config.for_images().tile_size == 284
    assert inherited_config(TrainConfig(data="d", init="m.keras", tile_size=572),
                            flat).for_images().tile_size == 572  # one you give is kept
    volume = build_unet((None, None, None, 1), 2, filters=4, depth=2)
    config = inherited_config(TrainConfig(data="d", init="m.keras"), volume)
    assert config.for_volumes().tile_size == 60  # VOLUME_DEMO's, not a 2D tile cubed


def test_a_tile_too_small_for_the_models_depth_is_refused_and_one_that_fits_it_is_not():
    model = build_unet((None, None, 1), 2, filters=4, depth=3)
    with pytest.raises(ValueError, match="tile_size 92 is under the smallest tile of a depth-3"):
        check_tile_size(inherited_config(TrainConfig(data="d", init="m.keras", tile_size=92),
                                         model).for_images())
    shallow = build_unet((None, None, 1), 2, filters=4, depth=2)  # 60 px would not do at depth 3
    config = inherited_config(TrainConfig(data="d", init="m.keras", tile_size=60), shallow)
    check_tile_size(config.for_images())
    assert config.for_images().tile_size == 60


def test_a_sketch_of_a_few_classes_fine_tunes_a_model_of_more_from_napari(tmp_path):
    """Partial labels of classes 0 and 1 (painted 1 and 2) on a 4-class model: the unlabelled
    pixels' value must lie outside all 4 classes, not only the painted ones."""
    from keras_unet.napari.jobs import finetune
    from keras_unet.napari.layer_data import BACKGROUND, TrainingPair

    build_unet((None, None, 1), 4, filters=4, depth=2, labels="semantic").save(
        tmp_path / "tissue.keras")
    [cells] = synthetic_cells(1, size=96)
    sketch = np.zeros((96, 96), np.int32)
    sketch[:20] = BACKGROUND          # class 0
    sketch[40:60, 40:60] = BACKGROUND + 1  # class 1
    tuned = finetune([TrainingPair(cells.image, sketch, False, True, "a / sketch")],
                     tmp_path / "tissue.keras", steps=2)
    assert tuned.model.is_file() and tuned.steps == 2


def test_napari_says_a_folder_it_cannot_write_as_unet_says_it_before_any_training(tmp_path):
    """The Fine-tune widget's "save in" under a file is refused before any work, and an
    operating-system error on a named file reaches the widget in ``unet``'s words."""
    from keras_unet.napari.jobs import attempt, finetune
    from keras_unet.napari.layer_data import TrainingPair

    build_unet((None, None, 1), 2, filters=4, depth=2).save(tmp_path / "cells.keras")
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    [cells] = synthetic_cells(1, size=96)
    pair = TrainingPair(cells.image, cells.labels, False, False, "a / a cells")
    outcome = attempt(finetune, [pair], tmp_path / "cells.keras", steps=2,
                      folder=tmp_path / "notes.txt")
    assert outcome.error == (f"the fine-tuned model '{tmp_path / 'notes.txt'}/"
                             f"cells-finetune-1.keras' lies under '{tmp_path / 'notes.txt'}', "
                             "which is a file, not a folder: choose another path.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.keras", "notes.txt"]

    def unreadable():
        raise PermissionError(13, "Permission denied", str(tmp_path / "a.png"))

    assert attempt(unreadable).error == f"'{tmp_path / 'a.png'}': Permission denied."


def test_a_typed_geometry_is_kept_with_init_even_where_it_equals_the_default(tmp_path, capsys):
    """`unet train --init` takes depth, filters and padding from the model unless you give them:
    a typed `--depth 3` (the default) is given, so a depth-2 model is refused by name instead of
    trained as depth 2, and a typed `--tile-size 188` is the tile, not the depth-2 default."""
    from keras_unet.cli import main
    from keras_unet.data.writers import save_samples

    build_unet((None, None, 1), 2, filters=4, depth=2).save(tmp_path / "shallow.keras")
    save_samples(synthetic_cells(3, size=96), tmp_path / "data")
    common = ["train", "--data", str(tmp_path / "data"), "--labels", "instances", "--init",
              str(tmp_path / "shallow.keras"), "--epochs", "1", "--steps-per-epoch", "1",
              "--batch-size", "2", "--mixed-precision", "off", "--no-export"]
    assert main([*common, "--depth", "3", "--run-dir", str(tmp_path / "deeper")]) == 2
    assert "has depth 2" in capsys.readouterr().err
    assert main([*common, "--tile-size", "188", "--run-dir", str(tmp_path / "run")]) == 0
    config = load_config(tmp_path / "run" / "config.yaml")
    assert (config.tile_size, config.depth, config.filters) == (188, 2, 4)
