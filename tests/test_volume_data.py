"""Training data in 3D: synthetic nuclei, weight maps and rings in 3D with physical distances,
the 3D augmentation, and make_dataset's volume tiles against NumPy/SciPy references."""

import itertools

import keras
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf
from skimage.segmentation import find_boundaries

from keras_unet import augment, build_unet, geometry
from keras_unet.data import Sample, make_dataset, synthetic_volumes
from keras_unet.data.pipeline import TilePlan, _labelled_counts
from keras_unet.losses import WeightedCrossentropy
from keras_unet.metrics import IoU
from keras_unet.weight_maps import class_labels, weight_map

DEPTH, TILE = 2, 44
OUT, BORDER = geometry.output_size(TILE, DEPTH), geometry.border(DEPTH)  # 4, 20


@pytest.fixture(scope="module")
def volumes():
    return synthetic_volumes(2, size=32, seed=4)


def test_synthetic_volumes_are_separate_nuclei(volumes):
    again = synthetic_volumes(2, size=32, seed=4)
    for volume, same in zip(volumes, again):
        np.testing.assert_array_equal(volume.image, same.image)
        labels = volume.labels
        assert volume.image.shape == labels.shape == (32, 32, 32)
        assert volume.image.dtype == np.uint8 and labels.dtype == np.int32
        assert labels.max() >= 8 and volume.spacing == (1.0, 1.0, 1.0)
        # no two nuclei are 26-neighbours, and each is one 6-connected piece
        grown = scipy.ndimage.grey_dilation(labels, size=(3, 3, 3))
        assert not ((labels > 0) & (grown != labels) & (grown > 0)).any()
        pieces, count = scipy.ndimage.label(labels > 0)
        assert count == labels.max()
        # the image is brighter inside the nuclei
        assert volume.image[labels > 0].mean() > volume.image[labels == 0].mean() + 30
    thin = synthetic_volumes(1, size=32, spacing=(2.0, 0.5, 0.5))[0]
    assert thin.image.shape == (8, 32, 32) and thin.spacing == (2.0, 0.5, 0.5)


def _reference_weight_map(labels, spacing, w0=10.0, sigma=5.0):
    """Eq. 2 in 3D the obvious way: one whole-volume distance transform per nucleus."""
    classes = (labels > 0).astype(int)
    present = [k for k in (0, 1) if (classes == k).any()]
    weights = np.ones(labels.shape)
    for k in present:
        weights[classes == k] = labels.size / (len(present) * (classes == k).sum())
    unit = np.asarray(spacing, float) / min(spacing)
    ids = np.unique(labels[labels > 0])
    distances = np.stack([scipy.ndimage.distance_transform_edt(labels != i, sampling=unit)
                          for i in ids], -1)
    distances.sort(axis=-1)
    total = distances[..., 0] + distances[..., 1]
    weights += np.where(labels == 0, w0 * np.exp(-total**2 / (2 * sigma**2)), 0.0)
    return weights.astype(np.float32)


@pytest.mark.parametrize("spacing", [None, (2.0, 1.0, 1.0), (1.0, 0.5, 0.7)])
def test_weight_map_in_3d_is_the_reference(spacing):
    labels = synthetic_volumes(1, size=24, seed=1, depth=14)[0].labels
    expected = _reference_weight_map(labels, spacing or (1, 1, 1))
    np.testing.assert_allclose(weight_map(labels, spacing=spacing), expected, rtol=2e-6,
                               atol=1e-6)


def test_weight_map_distances_are_physical():
    """Two nuclei 4 planes apart: with z voxels twice as large the gap weight falls."""
    labels = np.zeros((9, 5, 5), np.int32)
    labels[:2], labels[-2:] = 1, 2
    isotropic, coarse = weight_map(labels), weight_map(labels, spacing=(2.0, 1.0, 1.0))
    assert coarse[4, 2, 2] < isotropic[4, 2, 2]
    d = 3.0  # the middle plane is 3 planes from each nucleus
    w_c = isotropic[4, 2, 2] - 10 * np.exp(-(2 * d) ** 2 / 50)
    np.testing.assert_allclose(coarse[4, 2, 2], w_c + 10 * np.exp(-(4 * d) ** 2 / 50), rtol=1e-5)


def test_three_class_ring_in_3d_is_scikit_images_inner_boundary(volumes):
    labels = volumes[0].labels
    expected = (labels > 0).astype(int)
    expected[find_boundaries(labels, mode="inner", connectivity=1) & (labels > 0)] = 2
    np.testing.assert_array_equal(class_labels(labels, 3), expected)


def test_labelled_counts_in_3d_is_a_brute_force_count():
    mask = np.random.default_rng(0).random((9, 11, 7)) < 0.1
    starts = np.array(list(itertools.product((-3, 0, 4), (-2, 5), (0, 3, 6))))
    counts = _labelled_counts(mask, starts, (5, 6, 4))
    for (z, y, x), count in zip(starts, counts):
        assert count == mask[max(z, 0):max(z + 5, 0), max(y, 0):max(y + 6, 0),
                             max(x, 0):max(x + 4, 0)].sum()


def test_volume_grid_gives_the_sixteen_flips_and_plane_rotations():
    volume = np.arange(3 * 4 * 4, dtype=np.float32).reshape(3, 4, 4)
    flat = tf.constant(volume.ravel())
    seen = []
    for k in range(16):
        planes, rows, cols = augment.volume_grid(tf.constant([k]), 3, 4)
        got = augment.sample_mirrored(flat, rows, cols, planes=planes, offsets=[0], depths=[3],
                                      heights=[4], widths=[4], interpolation="nearest")[0].numpy()
        views = [np.rot90(np.flip(volume, 0) if flip else volume, turn, axes=(1, 2))
                 for flip in (False, True) for turn in range(4)]
        views += [np.flip(view, 2) for view in views]
        assert any(np.array_equal(got, view) for view in views)
        assert (k >= 8) == (got[0].min() >= 32)  # bit 3 flips z: plane 0 comes from plane 2
        seen.append(got.tobytes())
    assert len(set(seen)) == 16


def test_trilinear_sampling_is_scipys_order_one():
    rng = np.random.default_rng(2)
    volume = rng.random((5, 6, 7)).astype(np.float32)
    coordinates = rng.uniform(-3, 9, (3, 1, 4, 5, 6)).astype(np.float32)
    got = augment.sample_mirrored(tf.constant(volume.ravel()), coordinates[1], coordinates[2],
                                  planes=coordinates[0], offsets=[0], depths=[5], heights=[6],
                                  widths=[7]).numpy()
    expected = scipy.ndimage.map_coordinates(volume.astype(np.float64), coordinates[:, 0],
                                             order=1, mode="mirror")
    np.testing.assert_allclose(got[0], expected, atol=1e-5)


def test_volume_displacement_field_is_scipys_tricubic_spline():
    grid = np.random.default_rng(3).normal(0, 5, (1, 3, 3, 3, 3)).astype(np.float32)
    field = augment.displacement_field(grid, 9, 11, 13).numpy()[0]
    axes = [np.arange(n) * 2 / (n - 1) for n in (9, 11, 13)]
    coords = np.meshgrid(*axes, indexing="ij")
    for c in range(3):
        expected = scipy.ndimage.map_coordinates(grid[0, ..., c].astype(np.float64), coords,
                                                 order=3, mode="mirror")
        np.testing.assert_allclose(field[..., c], expected, atol=1e-4)


def test_displacements_are_physical():
    draws = augment.random_displacement(2000, seed=1, ndim=3, spacing=(4.0, 1.0, 1.0)).numpy()
    spread = draws.reshape(-1, 3).std(0)
    np.testing.assert_allclose(spread, [2.5, 10.0, 10.0], rtol=0.05)


def _crop(array, corner, size):
    pad = 2 * TILE
    padded = np.pad(array, [(pad, pad)] * 3 + [(0, 0)] * (array.ndim - 3), "reflect")
    return padded[tuple(slice(pad + c, pad + c + n) for c, n in zip(corner, size))]


@pytest.mark.parametrize("num_classes", [2, 3])
def test_unaugmented_volume_tiles_are_the_mirrored_normalised_volume(volumes, num_classes):
    cut = (slice(10), slice(13), slice(4, 13))
    part = Sample(volumes[0].image[cut], volumes[0].labels[cut], "part", (1.0, 1.0, 1.0))
    small = Sample(volumes[1].image[:3, :9, :6], volumes[1].labels[:3, :9, :6], "small",
                   (1.0, 1.0, 1.0))
    samples = [part, small]
    dataset = make_dataset(samples, tile_size=TILE, batch_size=5, num_classes=num_classes,
                           depth=DEPTH, augment=False, shuffle=False, repeat=False)
    images, labels, weights = (np.concatenate([b[i].numpy() for b in dataset]) for i in range(3))
    plan = TilePlan.for_sizes([s.labels.shape for s in samples], OUT)
    assert len(images) == len(plan) == 3 * 4 * 3 + 1 * 3 * 2
    for tile in range(len(plan)):
        sample = samples[plan.sample[tile]]
        corner = plan.corners[tile]
        image = sample.image.astype(np.float64)
        normalised = ((image - image.mean()) / image.std())[..., None]
        np.testing.assert_allclose(images[tile], _crop(normalised, corner - BORDER, (TILE,) * 3),
                                   atol=1e-5)
        np.testing.assert_array_equal(
            labels[tile], _crop(class_labels(sample.labels, num_classes), corner, (OUT,) * 3))
        np.testing.assert_array_equal(
            weights[tile], _crop(weight_map(sample.labels, num_classes=num_classes), corner,
                                 (OUT,) * 3))


def test_augmented_volume_tiles_keep_labels_with_their_voxels(volumes):
    clean = [Sample(((v.labels > 0) * 200 + 10).astype(np.uint8), v.labels, v.path, v.spacing)
             for v in volumes]
    first, second = ([[t.numpy() for t in b] for b in make_dataset(
        clean, tile_size=(20, 52, 52), batch_size=3, depth=DEPTH, seed=3,
        pooling=((1, 2, 2), (2, 2, 2)), kernel_sizes=((1, 3, 3), (3, 3, 3), (3, 3, 3)),
        spacing=(2.0, 1.0, 1.0)).take(2)] for _ in range(2))
    for a, b in zip(first, second):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    images, labels, weights = (np.concatenate([b[i] for b in first]) for i in range(3))
    out = geometry.output_shape((20, 52, 52), DEPTH, pooling=((1, 2, 2), (2, 2, 2)),
                                kernel_sizes=((1, 3, 3), (3, 3, 3), (3, 3, 3)))
    assert images.shape == (6, 20, 52, 52, 1) and labels.shape == weights.shape == (6, *out)
    source = set().union(*(zip(class_labels(v.labels).ravel().tolist(),
                               weight_map(v.labels, spacing=v.spacing).ravel().tolist())
                           for v in clean))
    assert set(zip(labels.ravel().tolist(), weights.ravel().tolist())) <= source
    borders = geometry.borders(3, DEPTH, pooling=((1, 2, 2), (2, 2, 2)),
                               kernel_sizes=((1, 3, 3), (3, 3, 3), (3, 3, 3)))
    centre = images[(slice(None), *(slice(b, b + o) for b, o in zip(borders, out)), 0)]
    both = [t for t in range(len(labels)) if 0 < labels[t].mean() < 1]
    assert both and all(np.corrcoef(centre[t].ravel(), labels[t].ravel())[0, 1] > 0.8
                        for t in both)


def test_partially_annotated_volumes_train_on_their_slices(volumes):
    """The 3D U-Net's sparse annotation: three labelled planes, the rest unlabelled (-1)."""
    labels = np.full(volumes[0].labels.shape, -1, np.int32)
    for plane in (3, 16, 29):
        labels[plane] = volumes[0].labels[plane]
    partial = Sample(volumes[0].image, labels, "sparse", volumes[0].spacing)
    dataset = make_dataset([partial], tile_size=TILE, batch_size=4, depth=DEPTH, seed=1,
                           augment=False)
    for _, label, weight in dataset.take(3):
        label, weight = label.numpy(), weight.numpy()
        assert ((label >= 0).reshape(4, -1).any(1)).all()  # no tile without a labelled voxel
        assert (weight[label < 0] == 0).all()
    keras.utils.set_random_seed(0)
    model = build_unet((None, None, None, 1), 2, filters=2, depth=DEPTH)
    model.compile(keras.optimizers.Adam(1e-3), WeightedCrossentropy(), metrics=[IoU(2, [1])])
    history = model.fit(make_dataset([partial], tile_size=TILE, batch_size=2, depth=DEPTH,
                                     seed=2), steps_per_epoch=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_a_dataset_is_images_or_volumes(volumes):
    from keras_unet.data import synthetic_cells

    with pytest.raises(ValueError, match="is a 2D image but synthetic-volume:0 is a volume"):
        make_dataset([volumes[0], synthetic_cells(1, size=64)[0]], tile_size=TILE, batch_size=2,
                     depth=DEPTH)
    with pytest.raises(ValueError, match=r"labels \(32, 32, 31\) and image \(32, 32, 32\)"):
        make_dataset([Sample(volumes[0].image, volumes[0].labels[..., :31], "a.tif")],
                     tile_size=TILE, batch_size=2, depth=DEPTH)
    with pytest.raises(ValueError, match="square in y and x"):
        make_dataset(volumes, tile_size=(44, 44, 48), batch_size=2, depth=DEPTH)
