"""Semantic K-class masks end to end: read from files, trained, every class learnt, scored."""

import keras
import numpy as np
import pytest
import scipy.ndimage
import tifffile
from PIL import Image

from keras_unet import build_unet, predict_tiled
from keras_unet.cli import main
from keras_unet.data import load_samples, make_dataset, synthetic_cells
from keras_unet.evaluation import pixel_iou
from keras_unet.losses import WeightedCrossentropy
from keras_unet.metrics import IoU
from keras_unet.training import train

CLASSES = ("background", "cytoplasm", "nucleus", "membrane")


def tissue_classes(instance_labels: np.ndarray) -> np.ndarray:
    """Synthetic cells as 4 classes by depth inside the cell: the membrane (within 2 px of the
    edge), the nucleus (deeper than 5 px) and the cytoplasm between them; background 0."""
    inside = scipy.ndimage.distance_transform_edt(instance_labels > 0)
    semantic = np.select([inside > 5, inside > 2, inside > 0], [2, 1, 3], 0)
    return semantic.astype(np.uint8)


def write_dataset(folder, samples, masks):
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for index, (sample, mask) in enumerate(zip(samples, masks)):
        Image.fromarray(sample.image).save(folder / "images" / f"{index}.png")
        Image.fromarray(mask).save(folder / "masks" / f"{index}.png")


def test_four_class_run_learns_every_class(tmp_path):
    samples = synthetic_cells(6, size=96, seed=3)
    write_dataset(tmp_path / "tissue", samples, [tissue_classes(s.labels) for s in samples])
    with pytest.raises(ValueError, match="0.png' holds 3 different non-zero values"):
        load_samples(tmp_path / "tissue")  # classes or cells? the user must say
    read = load_samples(tmp_path / "tissue", "semantic", num_classes=4)
    train_set, held_out = read[:4], read[4:]
    keras.utils.set_random_seed(0)
    model = build_unet((None, None, 1), 4, filters=8, depth=2, dropout=0.0,
                       class_names=CLASSES)
    model.compile(keras.optimizers.Adam(0.01), WeightedCrossentropy(),
                  metrics=[IoU(4, [index], name=f"iou_{name}") for index, name in
                           enumerate(CLASSES)])
    tiles = make_dataset(train_set, tile_size=76, batch_size=4, depth=2, num_classes=4,
                         labels="semantic", seed=0, augment=False)  # augmentation: slower
    model.fit(tiles, epochs=4, steps_per_epoch=24, verbose=0)
    truth = np.concatenate([s.labels.ravel() for s in held_out])[None]
    found = np.concatenate([predict_tiled(model, s.image).argmax(-1).ravel()
                            for s in held_out])[None]
    iou = pixel_iou(truth, found, num_classes=4)
    chance = np.bincount(truth[0], minlength=4) / truth.size  # IoU of guessing at frequency
    assert (iou > chance + 0.3).all() and iou.min() > 0.55, (iou, chance)


def test_semantic_bad_input_is_named(tmp_path):
    samples = synthetic_cells(1, size=48)
    write_dataset(tmp_path / "d", samples, [tissue_classes(samples[0].labels)])
    with pytest.raises(ValueError, match=r"0\.png' holds class id 3 but num_classes is 3"):
        load_samples(tmp_path / "d", "semantic", num_classes=3)
    with pytest.raises(ValueError, match="ignore_label 2 is also a class id"):
        load_samples(tmp_path / "d", "semantic", num_classes=4, ignore_label=2)
    (tmp_path / "w" / "images").mkdir(parents=True)
    (tmp_path / "w" / "masks").mkdir()
    Image.fromarray(samples[0].image).save(tmp_path / "w" / "images" / "a.png")
    tifffile.imwrite(tmp_path / "w" / "masks" / "a.tif", np.zeros((48, 48), "uint8"))
    with pytest.raises(ValueError, match=r"a\.tif' is uint8, which holds ids up to 255, but "
                                         "num_classes is 300"):
        load_samples(tmp_path / "w", "semantic", num_classes=300)
    with pytest.raises(ValueError, match=r"0\.png: holds class id 3 but num_classes is 3"):
        make_dataset(load_samples(tmp_path / "d", "semantic"), tile_size=44, batch_size=1,
                     depth=2, num_classes=3, labels="semantic")
    with pytest.raises(ValueError, match="class_names gives 3 names"):
        train({"data": str(tmp_path / "d"), "labels": "semantic", "num_classes": 4,
               "class_names": "a,b,c"})


def test_predict_writes_palette_masks_and_evaluate_names_the_classes(tmp_path, capsys):
    samples = synthetic_cells(1, size=64)
    write_dataset(tmp_path / "d", samples, [tissue_classes(samples[0].labels)])
    build_unet((None, None, 1), 4, filters=4, depth=2, class_names=CLASSES).save(
        tmp_path / "m.keras")
    assert main(["predict", "--model", str(tmp_path / "m.keras"), "--input",
                 str(tmp_path / "d" / "images"), "--output", str(tmp_path / "out"),
                 "--overlays"]) == 0
    mask = Image.open(tmp_path / "out" / "0.png")
    assert mask.mode == "P" and np.asarray(mask).max() < 4
    assert mask.getpalette()[3:6] == [230, 25, 75]  # class 1's colour
    assert Image.open(tmp_path / "out" / "0_overlay.png").mode == "RGB"
    assert main(["evaluate", "--model", str(tmp_path / "m.keras"), "--data", str(tmp_path / "d"),
                 "--labels", "semantic", "--report", str(tmp_path / "report")]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if "iou_" in line)
    assert "iou_nucleus" in header and "dice_membrane" in header and "mean_iou" in header
    assert main(["evaluate", "--model", str(tmp_path / "m.keras"), "--data", str(tmp_path / "d"),
                 "--labels", "semantic", "--class-names", "a,b", "--report",
                 str(tmp_path / "r2")]) == 2
    assert "--class-names gives 2 names (a, b) but the model has 4 classes" in \
        capsys.readouterr().err
    Image.fromarray(np.full((64, 64), 5, np.uint8)).save(tmp_path / "d" / "masks" / "0.png")
    assert main(["evaluate", "--model", str(tmp_path / "m.keras"), "--data", str(tmp_path / "d"),
                 "--labels", "semantic", "--report", str(tmp_path / "r3")]) == 2
    err = capsys.readouterr().err  # evaluate has no --num-classes to raise: the model sets it
    assert "holds class id 5 but num_classes is 4" in err and "use more classes" in err


@pytest.mark.parametrize("num_classes", [2, 3])
def test_the_masks_predict_writes_for_two_or_three_semantic_classes_read_back_as_classes(
        tmp_path, num_classes):
    """0/255 and 0/127/254 are how ``unet predict`` writes these masks; training on corrected
    predictions (`--labels semantic`) reads them as the class indices they encode."""
    samples = synthetic_cells(1, size=64)
    build_unet((None, None, 1), num_classes, filters=4, depth=2, labels="semantic").save(
        tmp_path / "m.keras")
    write_dataset(tmp_path / "d", samples, [np.zeros((64, 64), np.uint8)])
    assert main(["predict", "--model", str(tmp_path / "m.keras"), "--input",
                 str(tmp_path / "d" / "images"), "--output", str(tmp_path / "out")]) == 0
    scale = 255 // (num_classes - 1)
    assert not np.any(np.asarray(Image.open(tmp_path / "out" / "0.png")) % scale)
    classes = np.minimum(tissue_classes(samples[0].labels), num_classes - 1)
    Image.fromarray((classes * scale).astype(np.uint8)).save(tmp_path / "d" / "masks" / "0.png")
    [sample] = load_samples(tmp_path / "d", "semantic", num_classes=num_classes)
    np.testing.assert_array_equal(sample.labels, classes)
