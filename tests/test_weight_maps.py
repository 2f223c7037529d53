"""weight_map and class_labels against the obvious NumPy/SciPy/scikit-image references."""

import math

import numpy as np
import pytest
import scipy.ndimage
from skimage.segmentation import find_boundaries

import keras_unet
from keras_unet.data import synthetic_cells
from keras_unet.weight_maps import border_cutoff, class_labels, nearest_two_distances, weight_map


def reference_classes(labels, num_classes=2):
    """Background 0, cell 1, and (3 classes) scikit-image's inner boundaries as class 2."""
    classes = (labels > 0).astype(np.int32)
    if num_classes == 3:
        classes[find_boundaries(labels, mode="inner") & (labels > 0)] = 2
    return classes


def reference_distances(labels):
    """d1, d2 from one whole-image distance transform per cell, sorted (H x W x cells)."""
    ids = np.unique(labels[labels > 0])
    distances = np.stack([scipy.ndimage.distance_transform_edt(labels != i) for i in ids], -1)
    distances.sort(axis=-1)
    return distances[..., 0], distances[..., 1]


def reference_weight_map(labels, w0=10.0, sigma=5.0, class_weights="balanced", num_classes=2):
    """The obvious implementation of the paper's eq. 2 (also the peer in the benchmark)."""
    classes = reference_classes(labels, num_classes)
    weights = np.ones(labels.shape)
    if class_weights == "balanced":
        present = [k for k in range(num_classes) if (classes == k).any()]
        for k in present:
            weights[classes == k] = labels.size / (len(present) * (classes == k).sum())
    elif class_weights is not None:
        weights = np.asarray(class_weights, float)[classes]
    if len(np.unique(labels[labels > 0])) >= 2:
        d1, d2 = reference_distances(labels)
        weights += np.where(labels == 0, w0 * np.exp(-(d1 + d2) ** 2 / (2 * sigma**2)), 0.0)
    return weights.astype(np.float32)


def voronoi_cells(size, cells, seed, reach=12):
    """Touching cells: Voronoi regions of random seeds within ``reach`` px, 1-px gaps."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros((size, size), np.int32)
    points = rng.integers(0, size, (cells, 2))
    seeds[points[:, 0], points[:, 1]] = np.arange(1, cells + 1)
    distance, (rows, cols) = scipy.ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    labels = np.where(distance <= reach, seeds[rows, cols], 0)
    labels[:-1][(labels[:-1] != labels[1:]) & (labels[1:] > 0)] = 0
    labels[:, :-1][(labels[:, :-1] != labels[:, 1:]) & (labels[:, 1:] > 0)] = 0
    return labels


def assert_within_one_ulp(actual, expected):
    assert actual.dtype == expected.dtype == np.float32
    steps = np.abs(actual.view(np.int32).astype(np.int64) - expected.view(np.int32))
    assert steps.max() <= 1, f"max {steps.max()} float32 steps apart"


LABEL_IMAGES = {
    "synthetic": lambda: synthetic_cells(1, size=80, seed=3)[0].labels,
    "voronoi": lambda: voronoi_cells(72, 25, seed=1),
    "touching": lambda: voronoi_cells(72, 25, seed=1, reach=72),  # 1-px gaps only
    "sparse ids": lambda: voronoi_cells(48, 8, seed=2) * 1_000_003,
}


@pytest.mark.parametrize("image", sorted(LABEL_IMAGES))
@pytest.mark.parametrize("w0, sigma, class_weights, num_classes", [
    (10.0, 5.0, "balanced", 2),
    (10.0, 5.0, None, 2),
    (3.0, 2.0, [0.5, 2.0], 2),
    (10.0, 30.0, "balanced", 3),  # cut-off beyond the image: every window is the whole image
    (10.0, 5.0, [0.0, 1.0], 2),  # background weight 0: the term alone, down to float32 0
])
def test_weight_map_matches_reference(image, w0, sigma, class_weights, num_classes):
    labels = LABEL_IMAGES[image]()
    expected = reference_weight_map(labels, w0, sigma, class_weights, num_classes)
    actual = weight_map(labels, w0, sigma, class_weights, num_classes=num_classes)
    assert_within_one_ulp(actual, expected)


def test_weight_map_by_hand():
    labels = np.array([[1, 0, 0, 0, 2]])
    term = 10 * math.exp(-16 / 50)  # d1 + d2 = 4 for all three gap pixels
    np.testing.assert_allclose(weight_map(labels, class_weights=None)[0],
                               [1, 1 + term, 1 + term, 1 + term, 1], rtol=1e-7)


def test_balanced_classes_carry_equal_weight_with_mean_one():
    labels = voronoi_cells(64, 12, seed=4)
    for num_classes in (2, 3):
        classes = class_labels(labels, num_classes)
        weights = weight_map(labels, w0=0.0, num_classes=num_classes).astype(np.float64)
        totals = [weights[classes == k].sum() for k in range(num_classes)]
        np.testing.assert_allclose(totals, totals[0], rtol=1e-5)
        assert weights.mean() == pytest.approx(1.0, rel=1e-6)


def test_border_term_needs_two_cells_and_stays_on_background():
    one = np.zeros((20, 20), np.int32)
    one[5:10, 5:10] = 7
    background, cell = 400 / (2 * 375), 400 / (2 * 25)
    np.testing.assert_array_equal(weight_map(one), np.where(one > 0, cell, background)
                                  .astype(np.float32))
    np.testing.assert_array_equal(weight_map(np.zeros((4, 4), int)), np.ones((4, 4), np.float32))
    labels = voronoi_cells(40, 6, seed=5)
    plain = weight_map(labels, w0=0.0)
    weights = weight_map(labels)
    np.testing.assert_array_equal(weights[labels > 0], plain[labels > 0])
    assert (weights[labels == 0] > plain[labels == 0]).any()


def test_cutoff_drops_less_than_half_a_float32_step():
    for w0, sigma, background in ((10.0, 5.0, 1.0), (3.0, 2.0, 0.52), (50.0, 8.0, 4.0)):
        cutoff = border_cutoff(w0, sigma, background)
        dropped = w0 * math.exp(-cutoff**2 / (2 * sigma**2))
        assert dropped == pytest.approx(background * 2.0**-25, rel=1e-9)
        assert np.float32(background) + np.float32(dropped) == np.float32(background)
    assert border_cutoff(0.0, 5.0) == 0.0
    # Two cells farther apart than the cut-off: no pixel gets a border weight.
    labels = np.zeros((3, 40), np.int32)
    labels[:, 0], labels[:, -1] = 1, 2
    assert border_cutoff(10.0, 2.0, 1.0) < 39
    assert (weight_map(labels, sigma=2.0, class_weights=None)[:, 1:-1] == 1.0).all()


@pytest.mark.parametrize("max_sum", [9.0, 12.5, 200.0])
def test_nearest_two_distances_exact_where_the_sum_is_within_range(max_sum):
    labels = voronoi_cells(64, 15, seed=6)
    d1, d2 = nearest_two_distances(labels, max_sum=max_sum)
    r1, r2 = reference_distances(labels)
    inside = (labels == 0) & (r1 + r2 <= max_sum)
    assert inside.any()
    np.testing.assert_array_equal(d1[inside], r1[inside])
    np.testing.assert_array_equal(d2[inside], r2[inside])
    assert (d1 >= r1).all() and (d2 >= r2).all()


@pytest.mark.parametrize("num_classes", [2, 3])
def test_class_labels_match_scikit_image(num_classes):
    for labels in (synthetic_cells(1, size=64, seed=1)[0].labels,
                   voronoi_cells(40, 8, seed=7, reach=40)):  # touching cells without gaps
        np.testing.assert_array_equal(class_labels(labels, num_classes),
                                      reference_classes(labels, num_classes))


def test_weight_map_is_exported():
    assert keras_unet.weight_map is weight_map and "weight_map" in keras_unet.__all__


@pytest.mark.parametrize("call, message", [
    (lambda: weight_map(np.zeros((4, 4), np.float32)), "integer ids, got dtype float32"),
    (lambda: weight_map(np.zeros((2, 2, 4, 4), int)), "2D"),
    (lambda: weight_map(-2 * np.ones((4, 4), int)), "negative"),
    (lambda: weight_map(np.zeros((4, 4), int), sigma=0.0), "sigma must be a finite number > 0"),
    (lambda: weight_map(np.zeros((4, 4), int), w0=-1.0), "w0 must be a finite number >= 0"),
    (lambda: weight_map(np.zeros((4, 4), int), w0=float("nan")), "w0"),
    (lambda: weight_map(np.zeros((4, 4), int), class_weights="inverse"), "'balanced', None"),
    (lambda: weight_map(np.zeros((4, 4), int), class_weights=[1.0]), "2 finite non-negative"),
    (lambda: weight_map(np.zeros((4, 4), int), class_weights=[1.0, -2.0]), "non-negative"),
    (lambda: class_labels(np.zeros((4, 4), int), 4), "num_classes must be 2"),
    (lambda: class_labels(np.zeros((4, 4), int), True), "num_classes must be 2"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        call()
