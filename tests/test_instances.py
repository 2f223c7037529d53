"""Instance labels from class probabilities: rings kept, touching cells split, fragments gone."""

import numpy as np
import pytest
import skimage.measure
import skimage.segmentation
from voronoi_cells import voronoi_cells

from keras_unet import instances
from keras_unet.data import synthetic_cells
from keras_unet.instances import instance_labels
from keras_unet.instances.labels import SEED_MIN_SIZE
from keras_unet.weight_maps import class_labels


def _one_hot(classes, num_classes):
    return np.eye(num_classes, dtype="float32")[classes]


def _object_ious(prediction, truth):
    """IoU of every true object with the predicted object that covers most of it."""
    ious = []
    for obj in range(1, truth.max() + 1):
        inside = truth == obj
        ids, counts = np.unique(prediction[inside], return_counts=True)
        best = ids[np.argmax(counts)]
        ious.append(0.0 if best == 0 else
                    counts.max() / np.count_nonzero(inside | (prediction == best)))
    return np.array(ious)


def _seg(prediction, truth):
    """SEG of the Cell Tracking Challenge: mean IoU of true objects matched by > 50 % overlap."""
    scores = []
    for obj, iou in enumerate(_object_ious(prediction, truth), start=1):
        inside = truth == obj
        ids, counts = np.unique(prediction[inside], return_counts=True)
        matched = ids[np.argmax(counts)] > 0 and counts.max() > 0.5 * inside.sum()
        scores.append(iou if matched else 0.0)
    return float(np.mean(scores))


def _foreground_iou(prediction, truth):
    return np.count_nonzero((prediction > 0) & (truth > 0)) / np.count_nonzero(
        (prediction > 0) | (truth > 0))


def _same_objects(prediction, truth):
    """The same objects up to their numbering: a one-to-one map of labels, background to 0."""
    pairs = np.unique(np.stack([prediction.ravel(), truth.ravel()]), axis=1)
    return (prediction.max() == truth.max() and pairs.shape[1] == truth.max() + 1
            and len(np.unique(pairs[0])) == pairs.shape[1]
            and ((pairs[0] == 0) == (pairs[1] == 0)).all())


@pytest.fixture(scope="module")
def cells():
    return [sample.labels for sample in synthetic_cells(3, size=128)]


def test_a_perfect_three_class_prediction_gives_back_every_cell_with_its_ring(cells):
    for truth in cells:
        perfect = _one_hot(class_labels(truth, 3), 3)
        labels = instance_labels(perfect)
        assert labels.dtype == np.int32 and labels.shape == truth.shape
        assert _same_objects(labels, truth)
        np.testing.assert_array_equal(_object_ious(labels, truth), 1.0)
        assert _foreground_iou(labels, truth) == 1.0 and _seg(labels, truth) == 1.0
        # What keeping only class 1 did: the rings are lost, the score drops.
        interiors = skimage.measure.label(np.argmax(perfect, -1) == 1)
        assert _foreground_iou(interiors, truth) < 0.9 and _seg(interiors, truth) < 0.9


def test_touching_cells_keep_their_rings_in_a_three_class_prediction():
    truth = np.zeros((20, 24), "int32")  # four cells meeting at one corner, and a thin one
    truth[2:9, 2:9], truth[2:9, 9:17], truth[9:18, 2:9], truth[9:18, 9:17] = 1, 2, 3, 4
    truth[3:12, 19:21] = 5  # 2 px wide: all ring, no interior to seed it
    assert not (class_labels(truth, 3)[truth == 5] == 1).any()
    labels = instance_labels(_one_hot(class_labels(truth, 3), 3), min_size=0)
    assert _same_objects(labels, truth)
    assert instance_labels(_one_hot(class_labels(truth, 3), 3), method="components").max() == 2


def test_ring_pixels_at_slanted_junctions_go_to_the_nearest_cell():
    """Where the rings of three cells meet along slanted lines, some ring pixels are as near
    (in steps) to two interiors; the first seed to arrive would take them, the nearest does."""
    rows, cols = np.mgrid[:16, :16]
    centres = np.array([[8.15, 13.15], [2.79, 12.1], [2.8, 6.13]])
    truth = 1 + np.argmin((rows[..., None] - centres[:, 0])**2
                          + (cols[..., None] - centres[:, 1])**2, axis=-1)
    truth[[0, -1]] = truth[:, [0, -1]] = 0
    assert _same_objects(instance_labels(_one_hot(class_labels(truth, 3), 3)), truth)


def test_a_cell_whose_interior_is_only_diagonally_connected_is_one_object():
    rows, cols = np.mgrid[:16, :16]
    band = ((np.abs(rows - cols) <= 1) & (rows > 0) & (rows < 15)).astype("int32")
    classes = class_labels(band, 3)
    assert skimage.measure.label(classes == 1, connectivity=1).max() > 1
    assert _same_objects(instance_labels(_one_hot(classes, 3)), band)


def test_cells_touching_everywhere_still_score_almost_perfectly(cells):
    """Grown until they touch, cells meet at junctions where the layout is ambiguous; the
    nearest seed takes those few pixels."""
    for truth in cells:
        touching = skimage.segmentation.expand_labels(truth, 2)
        labels = instance_labels(_one_hot(class_labels(touching, 3), 3))
        assert labels.max() == touching.max()
        assert _seg(labels, touching) > 0.99 and _foreground_iou(labels, touching) == 1.0


def _two_discs(gap=14, radius=9):
    yy, xx = np.mgrid[:30, :30 + gap]
    left = (yy - 15)**2 + (xx - 12)**2 < radius**2
    right = (yy - 15)**2 + (xx - 12 - gap)**2 < radius**2
    truth = np.where(left | right, np.where(xx < 12 + gap / 2, 1, 2), 0)
    return _one_hot((left | right).astype(int), 2), truth


def test_watershed_splits_cells_merged_in_a_two_class_map():
    probabilities, truth = _two_discs()
    assert instance_labels(probabilities).max() == 1  # auto: components, one blob
    labels = instance_labels(probabilities, method="watershed")
    assert labels.max() == 2
    assert _object_ious(labels, truth).min() > 0.9


def test_watershed_does_not_split_single_cells(cells):
    rows, cols = np.mgrid[:40, :80]
    ellipse = ((rows - 20) / 8.0)**2 + ((cols - 40) / 30.0)**2 < 1
    assert instance_labels(_one_hot(ellipse.astype(int), 2), method="watershed").max() == 1
    found = [instance_labels(_one_hot((truth > 0).astype(int), 2), method="watershed")
             for truth in cells]  # a waisted cell may still be cut: h=2 is a compromise
    assert np.mean([_seg(labels, truth) for labels, truth in zip(found, cells)]) > 0.98
    assert sum(labels.max() for labels in found) <= 1.1 * sum(truth.max() for truth in cells)


def test_h_decides_how_deep_a_saddle_must_be_to_split():
    probabilities, _ = _two_discs(gap=14)  # the saddle is 9 - sqrt(81 - 49) = 3.3 px deep
    assert instance_labels(probabilities, method="watershed", h=3.0).max() == 2
    assert instance_labels(probabilities, method="watershed", h=4.0).max() == 1


def test_two_class_components_match_skimage_and_auto_uses_them():
    rng = np.random.default_rng(3)
    cell = rng.random((40, 50)) > 0.55
    probabilities = _one_hot(cell.astype(int), 2)
    for connectivity in (1, 2):
        expected = skimage.measure.label(cell, connectivity=connectivity)
        labels = instance_labels(probabilities, method="components", min_size=0,
                                 connectivity=connectivity)
        np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(instance_labels(probabilities),
                                  instance_labels(probabilities, method="components"))
    assert (skimage.measure.label(cell, connectivity=1).max()
            > skimage.measure.label(cell, connectivity=2).max())  # the two really differ


def test_auto_is_the_seeded_watershed_for_three_classes():
    probabilities = np.random.default_rng(5).dirichlet([1, 1, 1], (60, 70)).astype("float32")
    np.testing.assert_array_equal(instance_labels(probabilities),
                                  instance_labels(probabilities, method="watershed"))


def test_min_size_removes_fragments_and_numbers_the_rest_from_one():
    truth = np.zeros((30, 40), "int32")
    truth[2:12, 2:12], truth[15:25, 20:35] = 1, 2
    classes = class_labels(truth, 3)
    classes[27, 3] = classes[20, 5:8] = 1  # specks: a pixel and three
    classes[0:2, 30:33] = 2  # a ring fragment without interior, 6 px
    probabilities = _one_hot(classes, 3)
    kept = instance_labels(probabilities, min_size=0)
    assert kept.max() == 5
    labels = instance_labels(probabilities)  # default: under 10 px goes
    assert instances.MIN_SIZE == 10 and _same_objects(labels, truth)
    assert instance_labels(probabilities, min_size=4).max() == 3
    assert instance_labels(probabilities, min_size=101).max() == 1  # 150 px cell survives
    np.testing.assert_array_equal(np.unique(instance_labels(probabilities, min_size=4)),
                                  [0, 1, 2, 3])


def test_membranes_keep_cells_apart_across_gaps_in_the_predicted_membrane():
    from keras_unet.evaluation import rand_error

    regions, membrane = voronoi_cells(96, 12, seed=0, margin=4)
    truth = np.where(membrane, 0, regions)
    cell = np.where(truth > 0, 0.95, 0.05)
    pixels = np.argwhere(membrane)
    gaps = pixels[np.random.default_rng(1).choice(len(pixels), len(pixels) // 8)]
    for row, col in gaps:  # short stretches of membrane the network missed (argmax: cell)
        cell[max(0, row - 2):row + 3, max(0, col - 2):col + 3] = np.where(
            truth[max(0, row - 2):row + 3, max(0, col - 2):col + 3] == 0, 0.6, 0.95)
    probabilities = np.stack([1 - cell, cell], -1)
    merged = instance_labels(probabilities, method="components")
    labels = instance_labels(probabilities, method="membranes")
    assert merged.max() < truth.max() // 2  # the gaps join most cells at argmax
    assert labels.max() == truth.max() and (labels > 0).all()  # every pixel goes to a cell
    assert rand_error(truth, labels) < 0.02 < 0.3 < rand_error(truth, merged)
    assert all(iou > 0.8 for iou in _object_ious(np.where(truth > 0, labels, 0), truth))


def test_membranes_cores_below_the_seed_size_seed_nothing():
    cell = np.full((40, 60), 0.05)
    cell[5:35, 5:30] = 0.95  # one cell
    side = int(np.sqrt(SEED_MIN_SIZE)) - 1  # a speck smaller than a core may be
    cell[10:10 + side, 45:45 + side] = 1.0
    labels = instance_labels(np.stack([1 - cell, cell], -1), method="membranes", min_size=0)
    assert labels.max() == 1 and (labels == 1).all()


def test_an_empty_prediction_has_no_objects():
    background = _one_hot(np.zeros((8, 9), int), 3)
    for method in instances.METHODS:
        labels = instance_labels(background, method=method)
        assert labels.dtype == np.int32 and not labels.any()
    assert not instance_labels(_one_hot(np.zeros((8, 9), int), 2), method="watershed").any()


@pytest.mark.parametrize("probabilities, kwargs, match", [
    (np.zeros((5, 6)), {}, r"probabilities must be a \(height, width, classes\).*\(5, 6\)"),
    (np.zeros((1, 1, 5, 6, 2)), {}, r"\(height, width, classes\)"),
    (np.zeros((0, 6, 2)), {}, r"\(height, width, classes\)"),
    (np.zeros((5, 6, 1)), {}, r"1-channel sigmoid outputs are not supported.*\(H, W, 2\)"),
    (np.zeros((5, 6, 4)), {}, "4 channels; expected 2 .* or 3"),
    (np.full((5, 6, 2), np.nan), {}, "NaN"),
    (np.zeros((5, 6, 2), bool), {}, "real numbers"),
    (np.zeros((5, 6, 2)), {"method": "otsu"}, "method must be one of 'auto', 'components'"),
    (np.zeros((5, 6, 2)), {"min_size": -1}, r"min_size must be an integer >= 0.*-1"),
    (np.zeros((5, 6, 2)), {"min_size": 2.5}, "min_size"),
    (np.zeros((5, 6, 2)), {"h": 0}, "h must be a finite number > 0"),
    (np.zeros((5, 6, 2)), {"h": float("inf")}, "h must be"),
    (np.zeros((5, 6, 2)), {"connectivity": 3}, "connectivity must be 1"),
])
def test_bad_input_is_refused_in_one_line(probabilities, kwargs, match):
    with pytest.raises(ValueError, match=match) as error:
        instance_labels(probabilities, **kwargs)
    assert "\n" not in str(error.value)
