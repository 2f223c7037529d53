"""Partial annotations: the ignore value never reaches the loss, the metrics or the tiles."""

import numpy as np
import pytest
from PIL import Image

from keras_unet.data import Sample, load_samples, make_dataset, synthetic_cells
from keras_unet.evaluation import evaluate_probabilities, pixel_iou
from keras_unet.losses import CrossentropyDiceLoss, WeightedCrossentropy
from keras_unet.metrics import Dice, IoU
from keras_unet.weight_maps import class_weight_map, weight_map

IGNORE = 128


def partly_annotated(folder, size=64):
    """Synthetic cells written as a 0/255 mask with the left half blanked to IGNORE."""
    [sample] = synthetic_cells(1, size=size, seed=5)
    mask = np.where(sample.labels > 0, 255, 0).astype(np.uint8)
    mask[:, : size // 2] = IGNORE
    for name, array in (("images", sample.image), ("masks", mask)):
        (folder / name).mkdir(parents=True)
        Image.fromarray(array).save(folder / name / "a.png")
    return sample


def test_labelled_pixels_predicted_right_give_zero_loss_whatever_the_unlabelled_hold(tmp_path):
    partly_annotated(tmp_path)
    samples = load_samples(tmp_path, ignore_label=IGNORE)
    assert (samples[0].labels[:, :32] == -1).all() and (samples[0].labels[:, 32:] >= 0).all()
    tiles = make_dataset(samples, tile_size=76, batch_size=8, depth=2, augment=False,
                         shuffle=False, repeat=False)
    _, labels, weights = (np.asarray(part) for part in next(iter(tiles)))
    unlabelled = labels == -1
    assert unlabelled.any() and (~unlabelled).any() and (weights[unlabelled] == 0).all()
    correct = np.eye(2, dtype="float32")[np.where(unlabelled, 0, labels)]
    rng = np.random.default_rng(0)
    for unlabelled_prediction in (np.eye(2, dtype="float32")[1 - np.maximum(labels, 0)],
                                  rng.dirichlet([1, 1], labels.shape).astype("float32")):
        prediction = np.where(unlabelled[..., None], unlabelled_prediction, correct)
        for loss in (WeightedCrossentropy(), CrossentropyDiceLoss()):
            assert float(loss(labels, prediction, sample_weight=weights)) < 1e-5, loss.name
        for metric in (IoU(2), Dice(2)):
            metric.update_state(labels, prediction, sample_weight=weights)
            assert float(metric.result()) == 1.0
    everything_counts = np.where(unlabelled, 1 - np.maximum(labels, 0), labels)
    assert float(WeightedCrossentropy()(everything_counts, prediction)) > 0.5  # the control


def test_unlabelled_pixels_are_neither_cell_nor_background_in_the_weight_map():
    labels = np.zeros((40, 60), np.int32)
    labels[5:35, 5:20], labels[5:35, 23:38], labels[5:35, 42:55] = 1, 2, 3  # gaps of 3 px
    partial = labels.copy()
    partial[:, 40:] = -1  # the third cell and the gap next to it are unlabelled
    known = np.where(partial == -1, 0, partial)
    expected = np.where(partial == -1, 0, weight_map(known, class_weights=None))
    np.testing.assert_array_equal(weight_map(partial, class_weights=None), expected)
    balanced = class_weight_map(np.where(partial > 0, 1, partial))
    assert balanced[partial == -1].max() == 0
    assert np.isclose(balanced[partial >= 0].mean(), 1.0)  # balanced over labelled pixels only


def test_entirely_unlabelled_tiles_are_never_drawn(tmp_path):
    [sample] = synthetic_cells(1, size=128, seed=1)
    mask = np.where(sample.labels > 0, 255, 0).astype(np.uint8)
    mask[:, :100] = IGNORE  # only a 28 px strip on the right is annotated
    for name, array in (("images", sample.image), ("masks", mask)):
        (tmp_path / name).mkdir(parents=True)
        Image.fromarray(array).save(tmp_path / name / "a.png")
    samples = load_samples(tmp_path, "instances", ignore_label=IGNORE)
    grid = make_dataset(samples, tile_size=76, batch_size=64, depth=2, augment=False,
                        shuffle=False, repeat=False)
    _, labels, _ = next(iter(grid))
    assert len(labels) == 4  # of the 4x4 windows of 36 px (columns 0, 31, 61, 92) the last column
    random = make_dataset(samples, tile_size=44, batch_size=16, depth=2, seed=0,  # 4 px windows
                          augment=False)  # (a deformation may still move a window off its few)
    for _, labels, weights in random.take(20):
        assert (np.asarray(weights).reshape(16, -1).max(1) > 0).all()
        assert ((np.asarray(labels) >= 0).reshape(16, -1).any(1)).all()


def test_evaluation_and_bad_input_leave_the_unlabelled_out(tmp_path):
    truth = np.array([[0, 1, 1, -1, -1]])
    assert pixel_iou(truth, np.array([[0, 1, 1, 1, 0]])).tolist() == [1.0, 1.0]
    truth = np.zeros((12, 24), "int32")
    truth[2:9, 2:9], truth[:, 12:] = 1, -1  # one cell; the right half unlabelled
    found = np.zeros((12, 24), "int32")
    found[2:9, 2:9] = found[2:9, 14:21] = 1  # the cell, and one where nobody looked
    report = evaluate_probabilities(lambda image: np.eye(2)[image],
                                    [type("S", (), dict(image=found, labels=truth, path="a"))])
    assert report.rows[0]["f1_50"] == 1.0 and report.rows[0]["iou_foreground"] == 1.0
    partly_annotated(tmp_path / "d")
    with pytest.raises(ValueError, match="ignore_label 0 is the background"):
        load_samples(tmp_path / "d", "instances", ignore_label=0)
    blank = Sample(np.zeros((8, 8)), np.full((8, 8), -1, "int32"), "blank.png")
    with pytest.raises(ValueError, match="blank.png: every pixel is unlabelled"):
        make_dataset([blank], tile_size=44, batch_size=1, depth=2)
    odd = Sample(np.zeros((8, 8)), np.full((8, 8), -3, "int32"), "odd.png")  # was np.bincount's
    for labels, ids in (("instances", r"cell ids \(0: background\)"),
                        ("semantic", "class ids 0..2")):
        with pytest.raises(ValueError, match=f"odd.png: holds label -3; labels are {ids}, and -1 "
                                             "marks unlabelled pixels"):
            make_dataset([odd], tile_size=44, batch_size=1, depth=2, labels=labels,
                         num_classes=3)
