"""synthetic_cells: many touching cells with thin gaps, realistic rendering, deterministic."""

import numpy as np
import pytest
import scipy.ndimage

from keras_unet.data import Sample, synthetic_cells


@pytest.fixture(scope="module")
def samples():
    return synthetic_cells(4, size=128, seed=11)


def test_types_shapes_paths_and_consecutive_ids(samples):
    for index, sample in enumerate(samples):
        assert isinstance(sample, Sample) and sample.path == f"synthetic:{index}"
        assert sample.image.shape == sample.labels.shape == (128, 128)
        assert sample.image.dtype == np.uint8 and sample.labels.dtype == np.int32
        ids = np.unique(sample.labels)
        np.testing.assert_array_equal(ids, np.arange(len(ids)))


def test_deterministic_per_seed_and_prefix_stable(samples):
    again = synthetic_cells(2, size=128, seed=11)
    for a, b in zip(samples, again):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.labels, b.labels)
    other = synthetic_cells(1, size=128, seed=12)[0]
    assert not np.array_equal(other.labels, samples[0].labels)
    assert not np.array_equal(samples[0].labels, samples[1].labels)


def test_many_cells_each_one_component_none_touching(samples):
    for sample in samples:
        labels = sample.labels
        assert labels.max() >= 15  # ~ (128 / 27)^2 cells on a 128 px image
        components, count = scipy.ndimage.label(labels > 0)  # 4-connected
        assert count == labels.max()  # no two cells touch, no cell falls apart
        assert scipy.ndimage.label(labels > 0, np.ones((3, 3)))[1] == count  # not at corners
        pairs = np.unique(np.stack([labels[labels > 0], components[labels > 0]]), axis=1)
        assert pairs.shape[1] == count


def test_neighbours_are_separated_by_thin_gaps(samples):
    """Most cells have a neighbour 1-3 px away, and most gap pixels lie in such thin gaps."""
    for sample in samples:
        labels = sample.labels
        thin_neighbour = 0
        for cell in range(1, labels.max() + 1):
            distance = scipy.ndimage.distance_transform_edt(labels != cell)
            others = (labels > 0) & (labels != cell)
            gap = distance[others].min() - 1  # background pixels between the two cells
            assert gap >= 1  # not even diagonal neighbours
            thin_neighbour += gap <= 3
        assert thin_neighbour >= 0.9 * labels.max()
        assert 0.6 <= (labels > 0).mean() <= 0.92  # dense, with some background holes


def test_rendering_cells_gaps_noise_and_illumination(samples):
    for sample in samples:
        image, labels = sample.image.astype(float), sample.labels
        cells = labels > 0
        interior = scipy.ndimage.binary_erosion(cells, iterations=3)
        background = scipy.ndimage.distance_transform_edt(~cells)
        thin_gaps = ~cells & (background <= 1) & scipy.ndimage.binary_erosion(
            scipy.ndimage.binary_closing(cells, iterations=3), iterations=1)
        assert image[interior].mean() > image[thin_gaps].mean() > image[background > 4].mean()
        # faint, not black: blur fills thin gaps partly with the cells' light
        assert image[thin_gaps].mean() > image[background > 4].mean() + 10
        # noise: neighbouring interior pixels differ
        assert np.abs(np.diff(image, axis=1))[interior[:, 1:] & interior[:, :-1]].mean() > 2
    # uneven illumination: mean cell brightness differs between image halves of one image
    halves = [[s.image[:, :64][s.labels[:, :64] > 0].mean(),
               s.image[:, 64:][s.labels[:, 64:] > 0].mean()] for s in samples]
    assert max(abs(a - b) for a, b in halves) > 5


def test_default_size_and_bad_arguments():
    sample = synthetic_cells(1)[0]
    assert sample.image.shape == (256, 256) and sample.labels.max() >= 60
    for kwargs, message in (({"n": 0}, "n must be an integer >= 1"),
                            ({"n": 1.5}, "n must be"),
                            ({"n": 1, "size": 16}, "size must be an integer >= 32")):
        with pytest.raises(ValueError, match=message):
            synthetic_cells(**kwargs)
