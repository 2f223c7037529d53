"""The SavedModel tiles volumes inside its graph: served == local, the export opens as a network."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_unet import build_unet, predict_tiled
from keras_unet.inference.loading import load_network
from keras_unet.serving import export_for_serving, read_export_metadata
from keras_unet.serving.graph import predict_images, serving_tiling

RNG = np.random.default_rng(8)
SIZES = [(1, 1, 1), (3, 50, 7), (21, 9, 30)] + [tuple(int(n) for n in RNG.integers(1, 40, 3))
                                                for _ in range(3)]


@pytest.fixture(scope="module")
def served():
    keras.utils.set_random_seed(4)
    result = {}
    for name, kwargs, tile in (("valid", {}, 48), ("anisotropic", {"spacing": (2.0, 1.0, 1.0)},
                                                   None), ("same", {"padding": "same"}, 16)):
        model = build_unet((None, None, None, 2), 3, filters=2, depth=2, **kwargs)
        tiling = serving_tiling(model, tile)
        spec = tf.TensorSpec([None, None, None, None, 2], tf.float32)
        result[name] = model, tile, tf.function(
            lambda images, model=model, tiling=tiling: predict_images(model, images, tiling),
            input_signature=[spec])
    return result


@pytest.mark.parametrize("name", ["valid", "anisotropic", "same"])
def test_served_volumes_equal_local_prediction(served, name):
    model, tile, serve = served[name]
    for shape in SIZES:
        volume = RNG.integers(0, 1000, (2, *shape, 2)).astype(np.float32)
        out = serve(tf.constant(volume)).numpy()
        assert out.shape == (2, *shape, 3)
        for index in range(2):
            np.testing.assert_allclose(out[index], predict_tiled(model, volume[index],
                                                                 tile_size=tile), atol=1e-4)


def test_a_3d_export_serves_volumes_and_opens_as_a_network(tmp_path):
    keras.utils.set_random_seed(5)
    model = build_unet((None, None, None, 1), 2, filters=2, depth=2, spacing=(2.0, 1.0, 1.0))
    path = export_for_serving(model, tmp_path / "unet")
    record = read_export_metadata(path)
    assert record["signatures"] == ["serving_default"] and len(record["tile_size"]) == 3
    assert record["geometry"]["spacing"] == [2.0, 1.0, 1.0]
    volume = RNG.integers(0, 255, (9, 30, 23)).astype(np.uint8)
    network = load_network(path)
    assert network.kind == "savedmodel" and network.ndim == 3
    np.testing.assert_allclose(network.predict(volume), predict_tiled(model, volume), atol=1e-4)
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    outputs = signature(image=tf.constant(volume[None, ..., None].astype(np.float32)))
    assert outputs["labels"].shape == (1, 9, 30, 23)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not compatible with expected shape"):
        signature(image=tf.zeros((1, 30, 23, 1)))
    assert (path / "assets.extra" / "tf_serving_warmup_requests").is_file()
