"""The 3D U-Net: per-axis geometry, the network's layers, its recorded layout, saving."""

import keras
import numpy as np
import pytest

from keras_unet import build_unet, geometry
from keras_unet.errors import InputError
from keras_unet.inference.network import ModelGeometry, model_geometry


def _reference_output(size, pools, kernels):
    """An independent walk of one axis through the layers: None where a layer cannot take it."""
    for pool, kernel in zip(pools, kernels):
        size -= 2 * (kernel - 1)
        if size <= 0 or size % pool:
            return None
        size //= pool
    size -= 2 * (kernels[-1] - 1)
    for pool, kernel in zip(reversed(pools), reversed(kernels[:-1])):
        if size <= 0:
            return None
        size = size * pool - 2 * (kernel - 1)
    return size if size > 0 else None


@pytest.mark.parametrize("pools, kernels", [((2, 2), (3, 3, 3)), ((1, 2), (1, 3, 3)),
                                            ((1, 1), (1, 1, 3)), ((1, 2, 2), (1, 1, 3, 3))])
def test_axis_geometry_matches_a_reference_walk(pools, kernels):
    depth = len(pools)
    for size in range(1, 200):
        expected = _reference_output(size, pools, kernels)
        if expected is None:
            with pytest.raises(ValueError, match=f"input size {size} does not fit"):
                geometry.output_size(size, depth, pools=pools, kernels=kernels)
        else:
            assert geometry.output_size(size, depth, pools=pools, kernels=kernels) == expected
            assert size - expected == 2 * geometry.border(depth, pools=pools, kernels=kernels)
    smallest = geometry.smallest_valid_input(depth, pools=pools, kernels=kernels)
    assert _reference_output(smallest, pools, kernels) is not None
    assert all(_reference_output(s, pools, kernels) is None for s in range(1, smallest))
    for wanted in (1, 9, 30):
        size = geometry.valid_input_size(wanted, depth, pools=pools, kernels=kernels)
        assert _reference_output(size, pools, kernels) >= wanted
        assert not any((_reference_output(s, pools, kernels) or 0) >= wanted
                       for s in range(1, size))


def test_anisotropic_pooling_follows_the_spacing():
    pooling, kernels = geometry.anisotropic_pooling((3.0, 0.7, 0.7), 4)  # z 4.3x y and x
    assert pooling == ((1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2))
    assert kernels == ((1, 3, 3), (1, 3, 3), (3, 3, 3), (3, 3, 3), (3, 3, 3))
    assert geometry.anisotropic_pooling((1.0, 1.0, 1.0), 3)[0] == ((2, 2, 2),) * 3
    assert geometry.anisotropic_pooling((1.5, 1.0, 1.0), 2)[0] == ((2, 2, 2),) * 2
    for bad in ((0, 1, 1), (-1, 1, 1), (float("nan"), 1, 1)):
        with pytest.raises(InputError, match="spacing must be positive and finite"):
            geometry.anisotropic_pooling(bad, 2)


def test_3d_network_layers_and_shapes():
    model = build_unet((44, 44, 44, 2), 3, filters=2, depth=2)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv3D)]
    assert len(convs) == 11  # 10 3x3x3 convolutions and the 1x1x1
    assert sum(isinstance(layer, keras.layers.Conv3DTranspose) for layer in model.layers) == 2
    assert sum(isinstance(layer, keras.layers.MaxPooling3D) for layer in model.layers) == 2
    assert model.output_shape == (None, 4, 4, 4, 3)
    assert {c.kernel_size for c in convs} == {(3, 3, 3), (1, 1, 1)}
    out = model(np.zeros((1, 44, 44, 44, 2), "float32"))
    np.testing.assert_allclose(np.sum(out, -1), 1, atol=1e-5)


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_anisotropic_network_matches_its_geometry(upsampling, padding):
    model = build_unet((None, None, None, 1), 2, filters=2, depth=3, spacing=(2.0, 0.5, 0.5),
                       upsampling=upsampling, padding=padding, batch_norm=padding == "same")
    config = model.get_config()
    assert config["spacing"] == [2.0, 0.5, 0.5]
    assert config["pooling"] == [[1, 2, 2], [1, 2, 2], [2, 2, 2]]
    assert config["kernel_sizes"] == [[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3]]
    geom = model_geometry(model)
    shape = geometry.valid_input_shape((3, 5, 5), 3, padding, pooling=geom.pooling,
                                       kernel_sizes=geom.kernel_sizes)
    out = model(np.zeros((1, *shape, 1), "float32"))
    expected = geometry.output_shape(shape, 3, padding, pooling=geom.pooling,
                                     kernel_sizes=geom.kernel_sizes)
    assert tuple(out.shape[1:4]) == expected
    assert geom.borders == ((0, 0, 0) if padding == "same" else
                            tuple((i - o) // 2 for i, o in zip(shape, expected)))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == (14 if padding == "same" else 0)  # after each of the 14 3x3x3 convs


def test_linear_upsampling_is_separable_bilinear():
    """Along y and x it is what UpSampling2D(bilinear) does to each plane."""
    from keras_unet.layers import LinearUpsampling

    volume = np.random.default_rng(0).random((1, 3, 5, 4, 2)).astype("float32")
    up = LinearUpsampling((1, 2, 2))(volume).numpy()
    planes = keras.layers.UpSampling2D(2, interpolation="bilinear")(volume[0]).numpy()
    np.testing.assert_allclose(up[0], planes, atol=1e-6)
    assert LinearUpsampling((2, 1, 1))(volume).shape == (1, 6, 5, 4, 2)


def test_3d_model_saves_and_loads_its_layout(tmp_path):
    model = build_unet((None, None, None, 1), 2, filters=2, depth=2, spacing=(1.0, 0.5, 0.5))
    model.save(tmp_path / "v.keras")
    loaded = keras.models.load_model(tmp_path / "v.keras")
    assert loaded.get_config() == model.get_config()
    assert model_geometry(loaded) == model_geometry(model)
    volume = np.random.default_rng(1).random((1, 20, 44, 44, 1)).astype("float32")
    np.testing.assert_allclose(loaded(volume), model(volume), atol=1e-6)
    record = model_geometry(model).to_json()
    assert record["pooling"] == [[1, 2, 2], [2, 2, 2]]
    assert ModelGeometry.from_json(record) == model_geometry(model)


def test_2d_models_record_what_they_recorded_before():
    config = build_unet((None, None, 1), 2, filters=2, depth=2).get_config()
    assert not {"spacing", "pooling", "kernel_sizes"} & set(config)
    record = model_geometry(build_unet((None, None, 1), 2, filters=2, depth=2)).to_json()
    assert not {"spacing", "pooling", "kernel_sizes"} & set(record)


@pytest.mark.parametrize("kwargs, message", [
    ({"input_shape": (None, None, None, 1), "spacing": (1, 1)}, "one value per spatial axis"),
    ({"input_shape": (None, None, None, 1), "spacing": (0, 1, 1)}, "positive and finite"),
    ({"input_shape": (None, None, None, 1), "pooling": ((1, 1, 1), (2, 2, 2))},
     "pool at least one axis"),
    ({"input_shape": (None, None, None, 1), "pooling": ((2, 2), (2, 2))}, "rows of 3"),
    ({"input_shape": (45, None, None, 1)}, "input_shape depth: input size 45"),
])
def test_bad_3d_arguments(kwargs, message):
    with pytest.raises(InputError, match=message):
        build_unet(num_classes=2, filters=2, depth=2, **kwargs)


def test_the_readme_volume_example_runs(tmp_path, monkeypatch):
    import pathlib
    import re

    readme = pathlib.Path(__file__).resolve().parents[1] / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)
    example = next(block for block in blocks if "synthetic_volumes" in block)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["probabilities"].shape == (32, 32, 32, 3)
    assert namespace["nuclei"].shape == (32, 32, 32)
