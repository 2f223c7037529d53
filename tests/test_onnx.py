"""The ONNX export against the Keras model, under onnxruntime, and tiled through predict_tiled.

Each model is converted once per module (tf2onnx takes seconds); the checks run on the sessions.
"""

import json
import pathlib
import re

import keras
import numpy as np
import onnx
import onnxruntime
import pytest

from keras_unet import build_unet, geometry, predict_tiled
from keras_unet.inference.network import model_geometry
from keras_unet.serving.bare_network import float32_network
from keras_unet.serving.onnx_export import SUPPORTED_OPSETS, check_opset, export_onnx
from keras_unet.serving.onnx_network import GEOMETRY_KEY, OnnxNetwork

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{kind: (float32 Keras reference, OnnxNetwork, path, the exported model)}.

    ``valid``: the default softmax U-Net; ``same``: "same" padding, batch norm, logits, two
    channels, three classes, built under mixed_bfloat16 (its reference is its float32 copy).
    """
    folder = tmp_path_factory.mktemp("onnx")
    keras.utils.set_random_seed(3)
    models = {"valid": build_unet((None, None, 1), 2, filters=4, depth=2)}
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        models["same"] = build_unet((None, None, 2), 3, filters=4, depth=2, padding="same",
                                    final_activation=None, batch_norm=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    result = {}
    for kind, model in models.items():
        path = export_onnx(model, folder / f"{kind}.onnx")
        reference = model if kind == "valid" else float32_network(model)
        result[kind] = (reference, OnnxNetwork.from_file(path), path, model)
    return result


def _tiles(shape, channels, seed=0):
    return np.random.default_rng(seed).normal(size=(*shape, channels)).astype("float32")


@pytest.mark.parametrize("kind", ["valid", "same"])
def test_outputs_equal_keras_for_several_valid_sizes(exported, kind):
    model, network, _, _ = exported[kind]
    geom = model_geometry(model)
    sizes = [geometry.valid_input_size(n, geom.depth, geom.padding) for n in (1, 30, 57)]
    for seed, (height, width) in enumerate(zip(sizes, sizes[::-1])):
        tiles = _tiles((2, height, width), geom.channels, seed)
        expected = model(tiles, training=False).numpy()
        result = network.predict_tiles(tiles)
        assert result.dtype == np.float32 and result.shape == expected.shape
        np.testing.assert_allclose(result, expected, atol=1e-4, rtol=0)


def test_batch_and_spatial_dimensions_are_dynamic_and_types_float32(exported):
    proto = onnx.load(str(exported["valid"][2]))
    (image,), (output,) = proto.graph.input, proto.graph.output
    dims = [dim.dim_param or dim.dim_value for dim in image.type.tensor_type.shape.dim]
    assert all(isinstance(dim, str) for dim in dims[:3]) and dims[3] == 1
    assert (image.name, output.name) == ("image", "probabilities")
    float32 = onnx.TensorProto.FLOAT
    assert image.type.tensor_type.elem_type == output.type.tensor_type.elem_type == float32
    assert [o.name for o in onnx.load(str(exported["same"][2])).graph.output] == ["logits"]


def test_a_mixed_bfloat16_model_exports_as_float32(exported):
    reference, network, path, model = exported["same"]
    assert model.layers[1].dtype_policy.name == "mixed_bfloat16"
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == session.get_outputs()[0].type == "tensor(float)"
    tiles = _tiles((2, 64, 80), 2)
    result = network.predict_tiles(tiles)
    np.testing.assert_allclose(result, reference(tiles).numpy(), atol=1e-4, rtol=0)
    bfloat16 = model(tiles, training=False).numpy()  # the same weights, computed in bfloat16
    assert 0 < np.abs(result - bfloat16).max() < 0.1 * np.abs(result).max()


@pytest.mark.parametrize("kind, shape, tile", [("valid", (70, 93), 60), ("same", (41, 66), None)])
def test_predict_tiled_on_onnx_equals_keras(exported, kind, shape, tile):
    model, network, _, _ = exported[kind]
    image = (np.random.default_rng(5).random((*shape, model_geometry(model).channels)) * 255
             ).astype("uint8")
    expected = predict_tiled(model, image, tile_size=tile)
    result = predict_tiled(network, image, tile_size=tile)
    assert result.shape == expected.shape
    np.testing.assert_allclose(result, expected, atol=1e-4, rtol=0)


def test_the_file_records_the_geometry(exported):
    _, network, path, model = exported["same"]
    assert network.geometry == model_geometry(model)
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(metadata[GEOMETRY_KEY]) == model_geometry(model).to_json()


def test_an_onnx_file_without_our_metadata_is_refused(exported, tmp_path):
    proto = onnx.load(str(exported["valid"][2]))
    del proto.metadata_props[:]
    onnx.save_model(proto, str(tmp_path / "bare.onnx"))
    with pytest.raises(ValueError, match="has no 'keras_unet.geometry' metadata"):
        OnnxNetwork.from_file(tmp_path / "bare.onnx")
    (tmp_path / "text.onnx").write_text("not onnx")
    with pytest.raises(ValueError, match="cannot be loaded by onnxruntime"):
        OnnxNetwork.from_file(tmp_path / "text.onnx")


def test_export_refuses_bad_input_and_leaves_nothing(exported, tmp_path):
    model, _, path, _ = exported["valid"]
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="already exists; pass --overwrite"):
        export_onnx(model, path)
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="must end in .onnx"):
        export_onnx(model, tmp_path / "unet.zip")
    dense = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not a U-Net|no MaxPooling2D"):
        export_onnx(dense, tmp_path / "dense.onnx")
    for opset in (SUPPORTED_OPSETS.start - 1, SUPPORTED_OPSETS.stop, "17", True):
        with pytest.raises(ValueError, match="--opset .* cannot be written by tf2onnx"):
            check_opset(opset)
    assert list(tmp_path.iterdir()) == []


def test_readme_onnxruntime_snippet_runs_as_printed(exported, tmp_path, monkeypatch):
    snippet = next(block for block in re.findall(r"```python\n(.*?)```", README.read_text(),
                                                 flags=re.S)
                   if "onnxruntime.InferenceSession" in block)
    model, _, path, _ = exported["valid"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "unet.onnx").write_bytes(path.read_bytes())
    namespace = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    tile = namespace["tile"]
    np.testing.assert_allclose(namespace["probabilities"], model(tile).numpy(), atol=1e-4)
    assert namespace["geometry"]["depth"] == model_geometry(model).depth
