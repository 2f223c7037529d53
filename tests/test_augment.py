"""Augmentations against SciPy/NumPy references: spline field, mirrored sampling, exact maps."""

import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from keras_unet import augment


def _batch(shape=(2, 23, 31), channels=2, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(*shape, channels)).astype("float32")
    labels = rng.integers(0, 7, shape).astype("int32")
    weights = rng.uniform(0.5, 10.0, shape).astype("float32")
    return images, labels, weights


def _field_reference(grid, height, width):
    """SciPy's cubic spline through the control points (mirror boundary) at every pixel."""
    rows = np.arange(height) * (grid.shape[0] - 1) / (height - 1)
    cols = np.arange(width) * (grid.shape[1] - 1) / (width - 1)
    coords = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([scipy.ndimage.map_coordinates(grid[..., c].astype(np.float64), coords,
                                                   order=3, mode="mirror") for c in (0, 1)], -1)


def _warp_reference(images, labels, weights, field):
    """scipy.ndimage.map_coordinates: bilinear images, nearest labels/weights, mirrored."""
    height, width = labels.shape[1:]
    rows, cols = np.mgrid[:height, :width].astype(np.float64)
    out_images, out_labels, out_weights = [], [], []
    for b in range(len(labels)):
        coords = [rows + field[b, ..., 0], cols + field[b, ..., 1]]
        out_images.append(np.stack([
            scipy.ndimage.map_coordinates(images[b, ..., c].astype(np.float64), coords, order=1,
                                          mode="mirror") for c in range(images.shape[-1])], -1))
        out_labels.append(scipy.ndimage.map_coordinates(labels[b], coords, order=0, mode="mirror"))
        out_weights.append(scipy.ndimage.map_coordinates(weights[b], coords, order=0,
                                                         mode="mirror"))
    return np.stack(out_images), np.stack(out_labels), np.stack(out_weights)


def test_displacement_field_is_scipys_bicubic_spline():
    grid = np.random.default_rng(1).normal(0, 10, (3, 3, 4, 2)).astype("float32")
    field = augment.displacement_field(grid, 29, 40).numpy()
    for b in range(3):
        np.testing.assert_allclose(field[b], _field_reference(grid[b], 29, 40), atol=1e-4)
    # control points keep their values (interpolation, not smoothing)
    np.testing.assert_allclose(field[:, ::14, ::13], grid, atol=1e-4)


@pytest.mark.parametrize("sigma", [3.0, 60.0])  # 60 px: several mirror reflections
def test_elastic_deform_matches_scipy_map_coordinates(sigma):
    images, labels, weights = _batch()
    grid = augment.random_displacement(2, sigma=sigma, seed=5)
    out_images, out_labels, out_weights = augment.elastic_deform(images, labels, grid, weights)
    field = _field_reference(grid[0].numpy(), 23, 31), _field_reference(grid[1].numpy(), 23, 31)
    ref_images, ref_labels, ref_weights = _warp_reference(images, labels, weights, np.stack(field))
    np.testing.assert_allclose(out_images.numpy(), ref_images, atol=2e-4)
    # nearest neighbour: a coordinate within float error of .5 may round either way
    assert np.mean(out_labels.numpy() != ref_labels) < 2e-3
    assert np.mean(out_weights.numpy() != ref_weights) < 2e-3
    assert out_labels.dtype == tf.int32 and set(np.unique(out_labels)) <= set(np.unique(labels))


def test_zero_displacement_is_the_exact_identity():
    images, labels, weights = _batch()
    out = augment.elastic_deform(images, labels, tf.zeros((2, 3, 3, 2)), weights)
    for got, expected in zip(out, (images, labels, weights)):
        np.testing.assert_array_equal(got.numpy(), expected)


def test_elastic_deform_compiles_with_xla_and_runs_in_tf_data():
    images, labels, weights = _batch()
    grid = augment.random_displacement(2, seed=3)
    eager = augment.elastic_deform(images, labels, grid, weights)
    compiled = tf.function(augment.elastic_deform, jit_compile=True)(images, labels, grid, weights)
    np.testing.assert_allclose(compiled[0].numpy(), eager[0].numpy(), atol=1e-5)
    np.testing.assert_array_equal(compiled[1].numpy(), eager[1].numpy())

    def deform(index):
        seed = tf.stack([index, tf.constant(7, tf.int64)])
        return augment.elastic_deform(images, labels, augment.random_displacement(2, seed=seed))

    dataset = tf.data.Dataset.range(2).map(deform, num_parallel_calls=2)
    first, second = [[t.numpy() for t in batch] for batch in dataset], list(dataset)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a[0], b[0].numpy())
    assert not np.array_equal(first[0][0], first[1][0])


def test_random_displacement_statistics_and_seeds():
    draws = augment.random_displacement(3000, grid=3, sigma=10.0, seed=11).numpy()
    assert draws.shape == (3000, 3, 3, 2) and draws.dtype == np.float32
    assert abs(draws.mean()) < 0.2 and abs(draws.std() - 10.0) < 0.2
    np.testing.assert_array_equal(draws, augment.random_displacement(3000, seed=11).numpy())
    assert not np.array_equal(draws[:5], augment.random_displacement(5, seed=12).numpy())
    seeded = augment.random_displacement(4, seed=tf.constant([3, 4]))
    np.testing.assert_array_equal(seeded, augment.random_displacement(4, seed=[3, 4]))
    with pytest.raises(ValueError, match="grid"):
        augment.random_displacement(2, grid=1)
    with pytest.raises(ValueError, match="seed"):
        augment.random_displacement(2, seed=[1, 2, 3])


def test_sample_mirrored_reads_images_of_different_sizes_from_one_buffer():
    rng = np.random.default_rng(2)
    first, second = rng.normal(size=(5, 7)), rng.normal(size=(3, 4))
    flat = tf.constant(np.concatenate([first.ravel(), second.ravel()]), tf.float32)
    rows = rng.uniform(-12, 15, (2, 6, 6)).astype("float32")
    cols = rng.uniform(-12, 15, (2, 6, 6)).astype("float32")
    got = augment.sample_mirrored(flat, rows, cols, offsets=[0, 35], heights=[5, 3],
                                  widths=[7, 4]).numpy()
    for b, image in enumerate((first, second)):
        ref = scipy.ndimage.map_coordinates(image, [rows[b], cols[b]], order=1, mode="mirror")
        np.testing.assert_allclose(got[b], ref, atol=1e-5)
    with pytest.raises(ValueError, match="nearest"):
        augment.sample_mirrored(tf.constant([1, 2]), rows, cols, offsets=[0, 0], heights=[1, 1],
                                widths=[2, 2])


def _dihedral(array, k):
    """NumPy reference of dihedral_grid's k: transpose (bit 2), flip rows (1), columns (2)."""
    array = np.swapaxes(array, 0, 1) if k & 4 else array
    array = array[::-1] if k & 1 else array
    return array[:, ::-1] if k & 2 else array


def test_random_flip_rotate_applies_one_dihedral_map_to_all_three():
    images, labels, weights = _batch(shape=(64, 6, 6), channels=1)
    out = [t.numpy() for t in augment.random_flip_rotate(images, labels, weights, seed=4)]
    seen = set()
    for b in range(64):
        matches = [k for k in range(8) if all(np.array_equal(o[b], _dihedral(x[b], k))
                                              for o, x in zip(out, (images, labels, weights)))]
        assert len(matches) == 1, f"tile {b} is not one flip/rotation of its input"
        seen.add(matches[0])
    assert seen == set(range(8))
    with pytest.raises(ValueError, match="square"):
        augment.random_flip_rotate(images[:, :5], labels[:, :5])


def test_random_shift_is_a_mirrored_integer_shift():
    images, labels, weights = _batch(shape=(8, 9, 10), channels=1)
    shift = 3
    out = [t.numpy() for t in augment.random_shift(images, labels, weights, shift, seed=1)]
    moved = 0
    for b in range(8):
        padded = [np.pad(x[b], [(shift, shift), (shift, shift)] + [(0, 0)] * (x.ndim - 3),
                         mode="reflect") for x in (images, labels, weights)]
        shifts = [(dy, dx) for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1)]
        matches = [(dy, dx) for dy, dx in shifts
                   if all(np.array_equal(o[b], p[shift + dy:, shift + dx:][:9, :10])
                          for o, p in zip(out, padded))]
        assert matches, f"image {b} is not a mirrored shift of its input"
        moved += matches[0] != (0, 0)
    assert moved >= 6


def test_random_gray_values_components():
    images = tf.random.stateless_normal((16, 8, 8, 2), seed=[1, 1])
    brightness = augment.random_gray_values(images, 0.3, 0.0, 0.0, seed=2) - images
    offsets = brightness.numpy().reshape(16, -1)
    np.testing.assert_allclose(offsets, offsets[:, :1].repeat(128, 1), atol=1e-5)
    assert np.abs(offsets).max() <= 0.3 + 1e-6 and offsets[:, 0].std() > 0.05

    contrast = augment.random_gray_values(images, 0.0, 0.4, 0.0, seed=2).numpy()
    x = images.numpy()
    np.testing.assert_allclose(contrast.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5)
    ratio = contrast.std((1, 2, 3)) / x.std((1, 2, 3))
    assert ratio.min() >= 0.6 - 1e-5 and ratio.max() <= 1.4 + 1e-5 and ratio.std() > 0.05

    gamma = augment.random_gray_values(images, 0.0, 0.0, 0.5, seed=2).numpy()
    np.testing.assert_allclose(gamma.min((1, 2, 3)), x.min((1, 2, 3)), atol=1e-5)
    np.testing.assert_allclose(gamma.max((1, 2, 3)), x.max((1, 2, 3)), atol=1e-5)
    for b in range(16):  # a gamma curve keeps the order of the gray values
        order = np.argsort(x[b].ravel())
        assert np.all(np.diff(gamma[b].ravel()[order]) >= -1e-5)
    assert not np.allclose(gamma, x, atol=1e-3)
    with pytest.raises(ValueError, match="contrast"):
        augment.random_gray_values(images, contrast=1.5)


def test_public_warps_called_eagerly_go_through_the_xla_compiled_gather():
    images = tf.random.stateless_uniform((2, 16, 16, 1), seed=[3, 4])
    labels = tf.cast(images[..., 0] > 0.5, tf.int32)
    before = augment._warp.experimental_get_tracing_count()
    augment.elastic_deform(images, labels, augment.random_displacement(2, sigma=2.0, seed=1))
    augment.random_flip_rotate(images[:, :15, :15], labels[:, :15, :15], seed=2)
    assert augment._warp.experimental_get_tracing_count() > before
    assert augment._warp._jit_compile
