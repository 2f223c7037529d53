import numpy as np
import pytest

from keras_unet.normalization import image_moments, normalize_image

RNG = np.random.default_rng(3)


def test_moments_are_stable_for_a_large_offset_and_a_small_spread():
    """2048^2 pixels of 1e6 + 0.01 noise: E[x^2] - E[x]^2 gave std 0 (issue 14.7)."""
    image = 1e6 + 0.01 * RNG.standard_normal((2048, 2048, 1))
    mean, std = image_moments(image)
    assert mean == pytest.approx(image.mean(), rel=1e-12)
    assert std == pytest.approx(image.std(), rel=1e-6)


@pytest.mark.parametrize("rows_per_chunk", [1, 7, 64, 1000])
def test_chunked_moments_equal_numpy_whatever_the_chunking(rows_per_chunk):
    image = RNG.integers(0, 4096, (100, 37, 2)).astype(np.uint16)
    mean, std = image_moments(image, rows_per_chunk=rows_per_chunk)
    np.testing.assert_allclose((mean, std), (image.mean(), image.std()), rtol=1e-12)


def test_memory_mapped_image(tmp_path):
    image = np.lib.format.open_memmap(tmp_path / "image.npy", "w+", np.float32, (300, 50, 1))
    image[:] = 5e4 + RNG.random((300, 50, 1), np.float32)
    mean, std = image_moments(image, rows_per_chunk=64)
    reference = np.asarray(image, np.float64)
    np.testing.assert_allclose((mean, std), (reference.mean(), reference.std()), rtol=1e-10)


def test_wide_dtypes_keep_a_small_spread_on_a_large_offset():
    image = 1e6 + 0.01 * RNG.standard_normal((64, 64, 1))
    expected = (image - image.mean()) / image.std()
    for given in ({}, dict(zip(("mean", "std"), image_moments(image)))):
        normalized = normalize_image(image, **given).numpy()
        assert normalized.dtype == np.float32
        np.testing.assert_allclose(normalized, expected, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.int32])
def test_normalized_images_have_zero_mean_and_unit_std(dtype):
    image = RNG.integers(0, 200, (2, 16, 12, 3)).astype(dtype)
    normalized = normalize_image(image).numpy()
    assert normalized.dtype == np.float32
    np.testing.assert_allclose(normalized.mean((1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalized.std((1, 2, 3)), 1.0, rtol=1e-4)
