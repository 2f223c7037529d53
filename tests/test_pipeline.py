"""make_dataset against NumPy references: mirrored tiles, covering windows, seeds, model.fit."""

import keras
import numpy as np
import pytest

from keras_unet import build_unet, geometry
from keras_unet.data import Sample, make_dataset, synthetic_cells
from keras_unet.data.pipeline import TilePlan, grid_windows
from keras_unet.losses import WeightedCrossentropy
from keras_unet.weight_maps import class_labels, weight_map

DEPTH, TILE = 2, 92
OUT, BORDER = geometry.output_size(TILE, DEPTH), geometry.border(DEPTH)  # 52, 20


def _small_sample():
    """A 30x40 two-cell image: smaller than the 52 px output window and the 92 px tile."""
    labels = np.zeros((30, 40), np.int32)
    labels[5:15, 4:18], labels[16:27, 20:36] = 1, 2
    image = (labels > 0) * 150.0 + np.random.default_rng(0).normal(20, 5, labels.shape)
    return Sample(image.astype(np.float32), labels, "small")


def _crop(array, top, left, size):
    """``size`` x ``size`` window at ``(top, left)`` of the array mirrored without end."""
    pad = 4 * TILE
    padded = np.pad(array, [(pad, pad), (pad, pad)] + [(0, 0)] * (array.ndim - 2), "reflect")
    return padded[pad + top:pad + top + size, pad + left:pad + left + size]


@pytest.mark.parametrize("num_classes", [2, 3])
def test_unaugmented_grid_tiles_are_the_mirrored_normalised_image(num_classes):
    samples = [synthetic_cells(1, size=64)[0], _small_sample()]
    dataset = make_dataset(samples, tile_size=TILE, batch_size=3, num_classes=num_classes,
                           depth=DEPTH, augment=False, shuffle=False, repeat=False)
    batches = list(dataset)
    assert len(batches) == int(dataset.cardinality()) == 2  # 2x2 windows + 1 window
    images, labels, weights = (np.concatenate([b[i].numpy() for b in batches]) for i in range(3))
    assert images.shape == (5, TILE, TILE, 1) and images.dtype == np.float32
    assert labels.shape == weights.shape == (5, OUT, OUT) and labels.dtype == np.int32
    windows = [(0, top, left) for top in (0, 12) for left in (0, 12)] + [(1, -11, -6)]
    for tile, (index, top, left) in enumerate(windows):
        sample = samples[index]
        image = sample.image.astype(np.float64)
        normalised = ((image - image.mean()) / image.std())[..., None]
        np.testing.assert_allclose(images[tile], _crop(normalised, top - BORDER, left - BORDER,
                                                       TILE), atol=1e-5)
        np.testing.assert_array_equal(
            labels[tile], _crop(class_labels(sample.labels, num_classes), top, left, OUT))
        np.testing.assert_array_equal(
            weights[tile],
            _crop(weight_map(sample.labels, num_classes=num_classes), top, left, OUT))


@pytest.mark.parametrize("size", [5, 52, 53, 100, 157])
def test_windows_cover_every_pixel_and_random_ones_reach_the_edges(size):
    starts = grid_windows(size, OUT)
    covered = np.zeros(size, bool)
    for start in starts:
        covered[max(start, 0):start + OUT] = True
    assert covered.all() and len(starts) == -(-size // OUT)
    plan = TilePlan.for_sizes([(size, 40)] * 50, OUT)
    tops = np.concatenate([plan.random_windows(np.array([0, epoch]))[1].numpy()
                           for epoch in range(10)])
    low, high = min(0, size - OUT), max(0, size - OUT)
    assert tops.min() == low and tops.max() == high


def _pairs(labels, weights):
    return set(zip(labels.ravel().tolist(), weights.ravel().tolist()))


@pytest.fixture(scope="module")
def clean_samples():
    """Synthetic cells drawn without noise: the image is bright exactly where the labels are."""
    return [Sample(((s.labels > 0) * 200 + 10).astype(np.uint8), s.labels, s.path)
            for s in synthetic_cells(2, size=80)]


def test_augmented_batches_are_seeded_and_keep_labels_with_their_pixels(clean_samples):
    first, second, other = (
        [[t.numpy() for t in batch] for batch in make_dataset(
            clean_samples, tile_size=TILE, batch_size=4, depth=DEPTH, seed=seed).take(2)]
        for seed in (3, 3, 4))
    for a, b in zip(first, second):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0][0], other[0][0])

    images, labels, weights = (np.concatenate([b[i] for b in first]) for i in range(3))
    assert set(np.unique(labels)) <= {0, 1}
    # nearest neighbour: every (label, weight) pair is one of a source pixel
    source = set().union(*(_pairs(class_labels(s.labels), weight_map(s.labels))
                           for s in clean_samples))
    assert _pairs(labels, weights) <= source
    # the same flip/rotation and deformation moved image and labels: cells stay bright
    centre = images[:, BORDER:BORDER + OUT, BORDER:BORDER + OUT, 0]
    for tile in range(len(labels)):
        if 0 < labels[tile].mean() < 1:
            assert np.corrcoef(centre[tile].ravel(), labels[tile].ravel())[0, 1] > 0.8


def test_model_fit_consumes_the_dataset(clean_samples):
    keras.utils.set_random_seed(0)
    model = build_unet((None, None, 1), 2, filters=4, depth=DEPTH)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.99), WeightedCrossentropy())
    dataset = make_dataset(clean_samples, tile_size=TILE, batch_size=4, depth=DEPTH, seed=5)
    history = model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def _sample(shape, path, labels_shape=None):
    return Sample(np.zeros(shape, np.uint8), np.zeros(labels_shape or shape[:2], np.int32), path)


@pytest.mark.parametrize("samples, kwargs, message", [
    ([], {}, "samples is empty"),
    ([_sample((64, 64), "a.png")], {"tile_size": 93}, "tile_size=93"),
    ([_sample((64, 64), "a.png"), _sample((64, 64, 3), "b.png")], {}, "b.png has 3 channel"),
    ([_sample((64, 64), "a.png")], {"batch_size": 0}, "batch_size"),
    ([_sample((64, 64), "a.png")], {"num_classes": 4}, "num_classes"),
    ([_sample((64, 64), "a.png", (64, 60))], {}, "a.png: labels"),
    ([np.zeros((64, 64))], {}, "not a keras_unet.data.Sample"),
])
def test_bad_input_is_rejected_before_any_work(samples, kwargs, message):
    arguments = {"tile_size": TILE, "batch_size": 2, "depth": DEPTH, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_dataset(samples, **arguments)
