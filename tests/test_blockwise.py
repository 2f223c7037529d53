"""Block-wise prediction of array-likes: the same result as predict_tiled, from any array."""

import dask.array as da
import keras
import numpy as np
import pytest
import tifffile
import zarr

from keras_unet import build_unet, predict_tiled
from keras_unet.inference.blocks import block_windows
from keras_unet.inference.blockwise import (
    array_moments,
    check_array,
    predict_array,
    read_normalized,
)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_unet((None, None, 1), 3, filters=4, depth=2)


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return (rng.integers(0, 4096, (90, 130)) + 30000).astype("uint16")  # an offset, 12 bit


@pytest.fixture(scope="module")
def whole(model, image):
    return predict_tiled(model, image)


def test_blocks_of_a_numpy_array_equal_predict_tiled_of_the_whole_image(model, image, whole):
    assert np.abs(predict_array(model, image, block_size=(37, 53)) - whole).max() < 1e-4


def test_zarr_in_and_out_block_by_block_equals_the_whole_image(model, image, whole, tmp_path):
    source = zarr.create_array(tmp_path / "in.zarr", shape=image.shape, chunks=(32, 48),
                               dtype=image.dtype)
    source[:] = image
    output = zarr.create_array(tmp_path / "p.zarr", shape=(*image.shape, 3), chunks=(40, 40, 3),
                               dtype="float32")
    classes = zarr.create_array(tmp_path / "c.zarr", shape=image.shape, chunks=(40, 40),
                                dtype="uint8")
    assert predict_array(model, source, output=output, classes=classes) is output
    assert np.abs(output[:] - whole).max() < 1e-4
    assert (classes[:] == whole.argmax(-1)).mean() > 0.999  # argmax of values within 1e-4


def test_a_dask_array_and_a_memory_mapped_tiff_give_the_same(model, image, whole, tmp_path):
    lazy = da.from_array(image, chunks=(45, 65))
    assert np.abs(predict_array(model, lazy, block_size=45) - whole).max() < 1e-4
    tifffile.imwrite(tmp_path / "a.tif", image)
    mapped = tifffile.memmap(tmp_path / "a.tif", mode="r")
    assert np.abs(predict_array(model, mapped, block_size=50) - whole).max() < 1e-4


def test_channels_are_read_channels_last(tmp_path):
    keras.utils.set_random_seed(1)
    rgb_model = build_unet((None, None, 3), 2, filters=4, depth=2)
    rgb = np.random.default_rng(1).integers(0, 255, (50, 60, 3), dtype="uint8")
    blocks = predict_array(rgb_model, rgb, block_size=24)
    assert np.abs(blocks - predict_tiled(rgb_model, rgb)).max() < 1e-4


def test_test_time_augmentation_does_not_depend_on_the_blocks(model, image):
    single = predict_array(model, image, block_size=512, tta=True)
    blocks = predict_array(model, image, block_size=40, tta=True)
    assert np.abs(blocks - single).max() < 1e-4
    assert np.abs(single - predict_array(model, image, block_size=512)).max() > 1e-3


def test_the_statistics_are_the_whole_image_ones_in_float64():
    image = (np.arange(3000 * 7).reshape(3000, 7) % 97 + 1e9).astype("float64")
    mean, std = array_moments(zarr.array(image, chunks=(100, 7)))
    assert np.isclose(mean, image.mean(), rtol=1e-15) and np.isclose(std, image.std())


def test_reading_mirrored_indices_reads_only_the_bounding_box():
    reads = []

    class Recording(np.ndarray):
        def __getitem__(self, key):
            reads.append(key)
            return np.asarray(self)[key]

    image = np.arange(100, dtype="float32").reshape(10, 10).view(Recording)
    pixels = read_normalized(image, np.array([2, 1, 0, 1]), np.array([5, 6]), 0.0, 1.0)
    assert pixels[:, :, 0].tolist() == [[25, 26], [15, 16], [5, 6], [15, 16]]
    assert reads == [(slice(0, 3), slice(5, 7))]


def test_block_windows_cover_the_image_once():
    cover = np.zeros((23, 31), int)
    for top, left, rows, cols in block_windows(cover.shape, (8, 10)):
        cover[top:top + rows, left:left + cols] += 1
    assert (cover == 1).all()


def test_bad_arrays_and_outputs_are_named(model, image):
    with pytest.raises(ValueError, match=r"big.zarr has shape \(2, 90, 130\)"):
        predict_array(model, np.zeros((2, 90, 130)), name="big.zarr")
    with pytest.raises(ValueError, match=r"has shape \(90, 130, 2\), but the model takes"):
        check_array(np.zeros((90, 130, 2)), 1)
    with pytest.raises(ValueError, match="expected an array with shape"):
        predict_array(model, [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="dtype"):
        predict_array(model, np.zeros((20, 20), "complex64"))
    with pytest.raises(ValueError, match=r"output has shape \(90, 130, 2\)"):
        predict_array(model, image, output=np.zeros((90, 130, 2), "float32"))
    with pytest.raises(ValueError, match="NaN or infinite"):
        predict_array(model, np.full((20, 20), np.nan, "float32"), name="nan.zarr")
    with pytest.raises(ValueError, match="block_size must be"):
        predict_array(model, image, block_size=0)
