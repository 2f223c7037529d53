"""Volumes through the one tiling engine: tiled == one whole pass of a 3D U-Net.

Random (seeded) volume sizes, including volumes thinner than one tile and one voxel thick,
isotropic and anisotropic tiny depth-2 networks, tiles smaller than the volume on every axis,
windows of a volume, and the 16 views of test-time augmentation.
"""

import keras
import numpy as np
import pytest

from keras_unet import build_unet, geometry, predict_tiled
from keras_unet.errors import InputError
from keras_unet.inference.engine import predict_window, read_span
from keras_unet.inference.mirror import mirror
from keras_unet.inference.network import compiled_forward, model_geometry
from keras_unet.inference.plan import tilings
from keras_unet.inference.tta import dihedral
from keras_unet.normalization import normalize_image

DEPTH = 2
RNG = np.random.default_rng(26)
SPACINGS = {"isotropic": None, "anisotropic": (2.0, 0.5, 0.5), "z twice": (1.0, 0.5, 0.5)}


def _random_cases(count):
    """(shape, channels, tile): thin and one-voxel volumes, tiles smaller than the volume."""
    cases = [((1, 1, 1), 1, None), ((1, 23, 31), 1, None), ((3, 40, 2), 2, None),
             ((30, 5, 7), 1, 48)]
    while len(cases) < count:
        shape = tuple(int(RNG.integers(1, 60)) for _ in range(3))
        tile = 44 + 4 * int(RNG.integers(0, 4)) if RNG.random() < 0.7 else None
        cases.append((shape, int(RNG.integers(1, 3)), tile))
    return cases


CASES = _random_cases(10)


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(3)
    return {(name, channels): build_unet((None, None, None, channels), 3, filters=2, depth=DEPTH,
                                         spacing=spacing)
            for name, spacing in SPACINGS.items() for channels in (1, 2)}


def _volume(shape, channels, seed):
    return np.random.default_rng(seed).integers(0, 4096, (*shape, channels)).astype(np.uint16)


def _one_pass(model, volume):
    """The model once on the whole normalised volume, mirrored by its borders to a valid size
    (indices mirrored by NumPy: np.pad cannot reflect an axis of one voxel)."""
    geom = model_geometry(model)
    normalized = normalize_image(volume, ndim=3).numpy()
    index = []
    for size, border, (pools, kernels) in zip(volume.shape[:3], geom.borders, geom.axis_layouts):
        big = geometry.valid_input_size(size, DEPTH, pools=pools, kernels=kernels)
        reflected = np.abs(np.arange(big) - border)  # mirrored at 0 ...
        period = max(2 * (size - 1), 1)
        folded = reflected % period
        index.append(np.where(folded > size - 1, period - folded, folded) if size > 1
                     else np.zeros(big, int))
    padded = normalized[np.ix_(*index)]
    out = compiled_forward(model, geom)(padded[None])[0].numpy()
    return out[:volume.shape[0], :volume.shape[1], :volume.shape[2]]


def test_the_reference_mirror_is_the_engines():
    for size in (1, 2, 5):
        index = np.arange(-30, 40)
        period = max(2 * (size - 1), 1)
        folded = np.abs(index) % period
        expected = np.where(folded > size - 1, period - folded, folded) if size > 1 else 0 * index
        np.testing.assert_array_equal(mirror(index, size).numpy(), expected)


@pytest.mark.parametrize("spacing", list(SPACINGS))
@pytest.mark.parametrize("shape, channels, tile", CASES)
def test_tiled_volume_equals_one_whole_pass(models, spacing, shape, channels, tile):
    model = models[(spacing, channels)]
    if tile is not None and spacing != "isotropic":  # a tile every axis of this model takes
        geom = model_geometry(model)
        tile = tuple(geometry.valid_tile_size(tile - 40, DEPTH, pools=p, kernels=k)
                     for p, k in geom.axis_layouts)
    volume = _volume(shape, channels, seed=sum(shape))
    tiled = predict_tiled(model, volume, tile_size=tile, batch_size=3)
    assert tiled.shape == (*shape, 3) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, _one_pass(model, volume), atol=1e-4, rtol=0)


def test_small_tiles_cut_every_axis(models):
    """Tiles of 44 voxels (4 output voxels each) cut a 21 x 30 x 26 volume many times per axis."""
    model = models[("isotropic", 1)]
    geom = model_geometry(model)
    *axes, _ = tilings(geom, 44)
    assert [tiling.tile for tiling in axes] == [44, 44, 44]
    volume = _volume((21, 30, 26), 1, seed=5)
    np.testing.assert_allclose(predict_tiled(model, volume, tile_size=44, batch_size=8),
                               _one_pass(model, volume), atol=1e-4, rtol=0)


def test_window_of_a_volume_is_that_part_of_the_whole(models):
    model = models[("anisotropic", 1)]
    volume = _volume((17, 35, 29), 1, seed=9)
    whole = predict_tiled(model, volume)
    normalized = normalize_image(volume, ndim=3).numpy()
    window = (5, 9, 3, 7, 20, 13)
    part = predict_window(model, lambda *index: normalized[np.ix_(*index)], volume.shape[:3],
                          window, tile_size=(10, 48, 48))
    np.testing.assert_allclose(part, whole[5:12, 9:29, 3:16], atol=1e-4, rtol=0)
    spans = read_span(model_geometry(model), window, volume.shape[:3], (10, 48, 48))
    assert len(spans) == 3 and all(0 <= lo < hi <= size
                                   for (lo, hi), size in zip(spans, volume.shape))


def test_tta_averages_sixteen_views_and_is_equivariant(models):
    model = models[("isotropic", 1)]
    volume = _volume((9, 14, 14), 1, seed=2)
    averaged = predict_tiled(model, volume, tta=True)
    for k in (3, 8, 13):  # a rotation, the z flip, a flipped rotation with the z flip
        view = np.ascontiguousarray(dihedral(volume, k, axes=(0, 1, 2)))
        turned = dihedral(predict_tiled(model, view, tta=True), k, inverse=True, axes=(0, 1, 2))
        np.testing.assert_allclose(turned, averaged, atol=1e-5)
    axes = (0, 1, 2)
    views = [dihedral(predict_tiled(model, np.ascontiguousarray(dihedral(volume, k, axes=axes))),
                      k, inverse=True, axes=axes) for k in range(16)]
    np.testing.assert_allclose(np.mean(views, axis=0), averaged, atol=1e-5)


def test_a_2d_model_refuses_a_volume_and_a_3d_model_an_image(models):
    image_model = build_unet((None, None, 1), 2, filters=2, depth=DEPTH)
    with pytest.raises(InputError, match=r"\(5, 40, 40, 1\).*looks like a volume"):
        predict_tiled(image_model, np.zeros((5, 40, 40, 1)))
    with pytest.raises(InputError, match=r"\(5, 40, 40\).*looks like a volume .*3D model"):
        predict_tiled(image_model, np.zeros((5, 40, 40)))
    with pytest.raises(InputError, match=r"model is 3D.*looks like a 2D image"):
        predict_tiled(models[("isotropic", 1)], np.zeros((40, 40)))


def test_volume_tile_sizes_are_checked_per_axis(models):
    geom = model_geometry(models[("z twice", 1)])  # z pooled at level 2 only: even sizes
    with pytest.raises(InputError, match=r"tile_size must be a positive int or a \(depth, "):
        tilings(geom, (44, 44))
    with pytest.raises(InputError, match=r"tile_size \(45, 44, 44\) \(depth\): input size 45"):
        tilings(geom, (45, 44, 44))
