"""Volumes larger than memory: block-wise (NumPy, zarr, dask) and OME-Zarr prediction of volumes
equal to the whole, one cell label across box faces, and reads bounded by one box."""

import dask.array as da
import keras
import numpy as np
import pytest
import zarr
from ome_zarr.writer import write_image

from keras_unet import build_unet, predict_tiled
from keras_unet.inference import load_network
from keras_unet.inference.blockwise import predict_array
from keras_unet.inference.dask_graph import load_cached, predict_dask
from keras_unet.inference.zarr_prediction import predict_zarr
from keras_unet.instances import instance_labels


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(7)
    return {"isotropic": build_unet((None, None, None, 1), 3, filters=2, depth=2),
            "anisotropic": build_unet((None, None, None, 1), 3, filters=2, depth=2,
                                      spacing=(2.0, 1.0, 1.0))}


def _volume(shape=(23, 37, 30), seed=0):
    return np.random.default_rng(seed).integers(0, 4000, shape).astype(np.uint16)


@pytest.mark.parametrize("name", ["isotropic", "anisotropic"])
@pytest.mark.parametrize("block", [9, (5, 16, 11)])
def test_blocks_of_a_volume_equal_the_whole(models, name, block):
    model, volume = models[name], _volume()
    whole = predict_tiled(model, volume)
    np.testing.assert_allclose(predict_array(model, volume, block_size=block), whole, atol=1e-4)


class CountingArray:
    """An array-like that records the largest box read from it."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.largest = data, data.shape, data.dtype, 0

    def __getitem__(self, key):
        box = self.data[key]
        self.largest = max(self.largest, box.size)
        return box


def test_memory_is_one_box_whatever_the_volume(monkeypatch):
    """A volume 64 boxes large is read box by box (each with its context), never whole, and
    its statistics in slabs of planes."""
    from keras_unet.inference import blockwise

    monkeypatch.setattr(blockwise, "MOMENT_PIXELS", 40 * 40 * 4)
    keras.utils.set_random_seed(3)
    model = build_unet((None, None, None, 1), 3, filters=2, depth=1)  # border 8, grid 2
    volume = _volume((40, 40, 40), seed=3)
    counting = CountingArray(volume)
    output = zarr.create_array(zarr.storage.MemoryStore(), shape=(40, 40, 40, 3),
                               chunks=(10, 10, 10, 3), dtype="float32")
    classes = zarr.create_array(zarr.storage.MemoryStore(), shape=(40, 40, 40),
                                chunks=(10, 10, 10), dtype="uint8")
    predict_array(model, counting, output=output, classes=classes)  # blocks: the chunks
    np.testing.assert_allclose(output[:], predict_tiled(model, volume), atol=1e-4)
    np.testing.assert_array_equal(classes[:], np.argmax(output[:], -1))
    context = 8 + 2  # the border and the pooling grid
    assert 10**3 < counting.largest <= (10 + 2 * context) ** 3 < volume.size / 2


def test_the_dask_graph_of_a_volume_equals_the_blocks(models, tmp_path):
    model = models["anisotropic"]
    path = tmp_path / "v.keras"
    model.save(path)
    volume = _volume((15, 30, 26), seed=4)
    lazy = da.from_array(volume, chunks=(8, 16, 16))
    graph = predict_dask(path, lazy, block_size=(8, 16, 16))
    assert graph.shape == (15, 30, 26, 3) and graph.chunks[0] == (8, 7)
    np.testing.assert_allclose(graph.compute(scheduler="sync"),
                               predict_array(load_cached(str(path)), volume, block_size=9),
                               atol=1e-5)


def test_an_ome_zarr_volume_is_predicted_in_boxes_with_one_label_per_cell(tmp_path):
    keras.utils.set_random_seed(2)
    model = build_unet((None, None, None, 1), 2, filters=2, depth=2)
    model.save(tmp_path / "v.keras")
    volume = _volume((2, 1, 18, 40, 36), seed=5)  # t, c, z, y, x
    write_image(volume, zarr.open_group(tmp_path / "in.ome.zarr", mode="w"), axes="tczyx",
                storage_options={"chunks": (1, 1, 9, 20, 20)})
    network = load_network(tmp_path / "v.keras")
    out = predict_zarr(network, tmp_path / "in.ome.zarr", tmp_path / "out.ome.zarr",
                       instances=True, block_size=16)
    store = zarr.open_group(out, mode="r")
    probabilities, labels = store["0"], store["labels/instances/0"]
    assert probabilities.shape == (2, 2, 18, 40, 36) and labels.shape == (2, 18, 40, 36)
    for t in range(2):
        whole = predict_tiled(model, volume[t, 0])
        np.testing.assert_allclose(np.moveaxis(probabilities[t], 0, -1), whole, atol=1e-4)
        expected = instance_labels(whole, method="components", min_size=network.cells.min_size)
        pairs = np.unique(np.stack([expected.ravel(), labels[t].ravel()]), axis=1)
        assert pairs.shape[1] == len(np.unique(pairs[0])) == len(np.unique(pairs[1]))
    np.testing.assert_array_equal(store["labels/mask/0"][:],
                                  np.argmax(np.moveaxis(probabilities[:], 1, -1), -1))


def test_a_plain_zarr_has_no_z_axis_for_a_3d_model(tmp_path, models):
    models["isotropic"].save(tmp_path / "v.keras")
    zarr.create_array(tmp_path / "plain.zarr", shape=(10, 12), dtype="uint8")
    with pytest.raises(ValueError, match="no z axis for a 3D U-Net"):
        predict_zarr(load_network(tmp_path / "v.keras"), tmp_path / "plain.zarr",
                     tmp_path / "out.ome.zarr")
    assert not (tmp_path / "out.ome.zarr").exists()
