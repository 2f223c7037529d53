"""The TF-Serving export against predict_tiled, the official protos and TF-Serving's own rules.

Each model is exported once per module; the checks run on the loaded SavedModel, through the
signatures (as ``tf.saved_model.load`` gives them) or through a TF1 session fed like the C++
server feeds it (``Session::Run`` with no client-side shape check).
"""

import base64
import dataclasses
import importlib.util
import io
import json
import os
import pathlib
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)
from PIL import Image
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from keras_unet import build_unet, predict_tiled
from keras_unet.class_layout import ClassLayout, mask_from_probabilities
from keras_unet.cli import main
from keras_unet.errors import FaultError
from keras_unet.inference.network import ModelGeometry, model_geometry
from keras_unet.inference.plan import concrete_plan, plan_axis, tilings
from keras_unet.serving import export as export_module
from keras_unet.serving import export_for_serving, read_export_metadata
from keras_unet.serving.codecs import encode_mask_png
from keras_unet.serving.graph import class_labels, serving_tiling
from keras_unet.serving.signatures import serving_functions
from keras_unet.serving.targets import existing_versions

ROOT = pathlib.Path(__file__).resolve().parents[1]
SERVING = ROOT / "serving"
VALID_TILE, SAME_TILE, MAX_PIXELS = 64, 32, 150 * 150


def _image(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    return (rng.normal(size=shape) * 50 + 10).astype(dtype)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{padding: (model, loaded SavedModel, version dir)}: depth 2, 4 filters, exported once."""
    keras.utils.set_random_seed(0)
    base = tmp_path_factory.mktemp("serving")
    result = {}
    for padding, tile in (("valid", VALID_TILE), ("same", SAME_TILE)):
        model = build_unet((None, None, 1), 2, filters=4, depth=2, padding=padding)
        path = export_for_serving(model, base / padding, tile_size=tile,
                                  max_image_pixels=MAX_PIXELS)
        result[padding] = model, tf.saved_model.load(str(path)), path
    return result


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# The graph's tiling is predict_tiled's ------------------------------------------------------

@pytest.mark.parametrize("padding, tile, fixed, depth", [
    ("valid", 64, False, 2), ("valid", 108, False, 3), ("valid", 64, True, 2),
    ("same", 32, False, 2), ("same", 48, False, 3),
])
def test_the_traced_plan_is_the_eager_plan_for_every_size(padding, tile, fixed, depth):
    """The served graph traces the plan that predict_tiled runs eagerly; in a graph, sizes are
    tensors, so every branch must still pick what the eager plan picks."""
    size_in = tile if fixed else None  # a fixed input size is the tile; a free one may shrink
    model = build_unet((size_in, size_in, 1), 2, filters=4, depth=depth, padding=padding)
    tiling = serving_tiling(model, tile).rows
    assert tiling.shrink == (padding == "valid" and not fixed)
    eager_tiling = tilings(model_geometry(model), None if tiling.shrink else tile,
                           max_tile=tile)[0]
    def fields(plan):
        return {field.name: getattr(plan, field.name) for field in dataclasses.fields(plan)}

    traced = tf.function(lambda size: fields(plan_axis(size, tiling)))
    for size in range(1, 4 * tile):
        got = {key: np.asarray(value) for key, value in traced(tf.constant(size)).items()}
        ref = fields(concrete_plan(plan_axis(size, eager_tiling)))
        for key in ref:
            np.testing.assert_array_equal(got[key], ref[key], err_msg=f"{key} at {size}")


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("shape, dtype", [
    ((1, 5, 7), np.uint8),  # far smaller than a tile (repeated mirroring)
    ((2, 37, 53), np.uint16),  # one tile, a batch of two
    ((1, 101, 67), np.float32),  # several tiles, odd sizes
    ((1, 149, 150), np.uint8),  # just under max_image_pixels
])
def test_serving_default_equals_predict_tiled(exports, padding, shape, dtype):
    model, loaded, _ = exports[padding]
    images = _image((*shape, 1), dtype)
    outputs = loaded.signatures["serving_default"](image=tf.constant(images, tf.float32))
    assert outputs["probabilities"].shape == (*shape, 2)
    assert outputs["labels"].dtype == tf.int32 and outputs["labels"].shape == shape
    tile = VALID_TILE if padding == "valid" else SAME_TILE
    for image, probabilities, labels in zip(images, outputs["probabilities"].numpy(),
                                            outputs["labels"].numpy()):
        expected = predict_tiled(model, image, tile_size=tile)
        assert np.abs(probabilities - expected).max() < 1e-4
        np.testing.assert_array_equal(labels, np.argmax(probabilities, axis=-1))


def test_valid_padding_result_does_not_depend_on_the_tile(exports):
    model, loaded, _ = exports["valid"]
    image = _image((90, 131, 1), np.uint16, seed=3)
    served = loaded.signatures["serving_default"](image=image[None].astype("float32"))
    for tile in (None, 44, 84):
        expected = predict_tiled(model, image, tile_size=tile)
        assert np.abs(served["probabilities"][0] - expected).max() < 1e-4


@pytest.mark.parametrize("kind", ["png8", "png16", "jpeg"])
def test_encoded_signature_decodes_predicts_and_encodes(exports, kind):
    model, loaded, _ = exports["valid"]
    image = _image((45, 61), np.uint16 if kind == "png16" else np.uint8, seed=5)
    if kind == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=90)
        data = buffer.getvalue()
        pixels = tf.io.decode_jpeg(data).numpy()  # JPEG decoders differ in the last bit
    else:
        data, pixels = _png(image), image
    outputs = loaded.signatures["encoded"](image_bytes=tf.constant([data, data]))
    expected = predict_tiled(model, pixels, tile_size=VALID_TILE)
    assert outputs["probabilities"].shape == (2, 45, 61, 2)
    assert np.abs(outputs["probabilities"][1] - expected).max() < 1e-4
    mask = np.asarray(Image.open(io.BytesIO(outputs["labels_png_bytes"][0].numpy())))
    np.testing.assert_array_equal(mask, mask_from_probabilities(outputs["probabilities"][0]))


@pytest.mark.parametrize("classes", [1, 3, 5])  # 5: semantic, the class indices themselves
def test_labels_and_png_masks_match_the_cli_masks(classes):
    rng = np.random.default_rng(classes)
    probabilities = rng.random((2, 6, 7, classes)).astype("float32")
    labels = class_labels(tf.constant(probabilities))
    pngs = encode_mask_png(labels, ClassLayout.of(classes))
    for png, p in zip(pngs.numpy(), probabilities):
        mask = np.asarray(Image.open(io.BytesIO(png)))
        np.testing.assert_array_equal(mask, mask_from_probabilities(p))


def test_encoded_signature_follows_the_model_channels():
    rgb = build_unet((None, None, 3), 2, filters=2, depth=1, padding="same")
    serve_encoded, _ = serving_functions(rgb, serving_tiling(rgb, 16), 10**6)["encoded"]
    image = _image((20, 24, 3), np.uint8, seed=4)
    outputs = serve_encoded(tf.constant([_png(image)]))
    expected = predict_tiled(rgb, image, tile_size=16)
    assert np.abs(outputs["probabilities"][0] - expected).max() < 1e-4
    two = build_unet((None, None, 2), 2, filters=2, depth=1, padding="same")
    assert list(serving_functions(two, serving_tiling(two, 16), 10**6)) == ["serving_default"]


# Bad input: InvalidArgument from inside the graph ---------------------------------------

@pytest.fixture(scope="module")
def session_runner(exports):
    """Runs serving_default the way TF-Serving does: a TF1 Session fed without shape checks."""
    path = exports["valid"][2]
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
    signature = meta.signature_def["serving_default"]
    feed = graph.get_tensor_by_name(signature.inputs["image"].name)
    fetch = [graph.get_tensor_by_name(signature.outputs[k].name) for k in ("probabilities",)]

    def run(array):  # Session::Run as the C++ server calls it (no Python-side shape check)
        return session._do_run(None, [], fetch, {feed.ref(): array}, None, None)[0]

    yield run
    session.close()


@pytest.mark.parametrize("array, message", [
    (np.zeros((1, 10, 10, 3), "float32"), "image must have 1 channel(s)"),
    (np.zeros((1, 10, 10), "float32"), "not compatible with expected shape [?,?,?,1]"),
    (np.zeros((1, 151, 150, 1), "float32"), "more pixels (height * width) than "
                                           f"max_image_pixels = {MAX_PIXELS}"),
    (np.zeros((1, 0, 10, 1), "float32"), "height and width >= 1"),
    (np.zeros((0, 10, 10, 1), "float32"), "at least one image"),
    (np.full((1, 4, 4, 1), np.nan, "float32"), "NaN or infinite pixels"),
])
def test_bad_images_fail_with_invalid_argument_in_the_served_graph(session_runner, array,
                                                                   message):
    assert session_runner(np.zeros((1, 9, 11, 1), "float32")).shape == (1, 9, 11, 2)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        session_runner(array)
    assert message in str(error.value)


def test_too_large_image_fails_through_the_signature_too(exports):
    serve = exports["same"][1].signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_image_pixels = 22500"):
        serve(image=tf.zeros((1, 1000, 1000, 1)))


@pytest.mark.parametrize("files, message", [
    ([b"GIF89a not an image we take"], "must hold a PNG or JPEG file"),
    ([_png(np.zeros((10, 12), "uint8")), _png(np.zeros((12, 10), "uint8"))],
     "same height and width"),
    ([_png(np.zeros((200, 200), "uint8"))], "max_image_pixels = 22500"),
])
def test_bad_files_fail_with_invalid_argument(exports, files, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        exports["valid"][1].signatures["encoded"](image_bytes=tf.constant(files))


def test_an_empty_batch_of_files_is_refused_naming_the_input(exports):
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes must hold at least one"):
        exports["valid"][1].signatures["encoded"](image_bytes=tf.constant([], tf.string))


def test_pixel_limit_is_read_from_the_header_before_decoding(exports):
    header = _png(np.zeros((1, 1), "uint8"))[:33]  # IHDR of a 1x1 PNG, claimed 60000 x 60000
    bomb = header[:16] + (60000).to_bytes(4, "big") * 2 + header[24:]
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_image_pixels"):
        exports["valid"][1].signatures["encoded"](image_bytes=tf.constant([bomb]))


# What TF-Serving reads: warmup, ops, requests -------------------------------------------

def test_warmup_file_parses_with_the_official_protos_and_replays(exports):
    _, loaded, path = exports["valid"]
    records = tf.data.TFRecordDataset(str(path / "assets.extra" / "tf_serving_warmup_requests"))
    signatures = []
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        signatures.append(request.model_spec.signature_name)
        inputs = {name: tf.make_ndarray(tensor) for name, tensor in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert outputs["probabilities"].shape == (1, 150, 150, 2)  # 512 > max_image_pixels
    assert sorted(signatures) == ["encoded", "serving_default"]


def test_graph_holds_only_standard_tensorflow_ops(exports):
    saved = saved_model_pb2.SavedModel.FromString((exports["valid"][2] /
                                                  "saved_model.pb").read_bytes())
    ops = set()
    for meta in saved.meta_graphs:
        ops |= {node.op for node in meta.graph_def.node}
        for function in meta.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    assert {"Conv2D", "DecodePng", "EncodePng", "While"} <= ops
    assert not ops & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
    assert all(op_def_registry.get(op) is not None for op in ops), \
        sorted(op for op in ops if op_def_registry.get(op) is None)


def _client():
    spec = importlib.util.spec_from_file_location("serving_client", SERVING / "client.py")
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    return client


def _rest_to_inputs(body, signature):
    """TF-Serving's row-format rules: instances stacked per input, {"b64": s} -> bytes."""
    specs = signature.structured_input_signature[1]
    instances = json.loads(json.dumps(body))["instances"]  # exactly what goes over the wire
    if len(specs) == 1 and not (isinstance(instances[0], dict) and set(instances[0]) <= set(specs)):
        instances = [{next(iter(specs)): instance} for instance in instances]

    def value(item):
        return base64.b64decode(item["b64"]) if isinstance(item, dict) else item

    return {name: tf.constant([value(instance[name]) for instance in instances], spec.dtype)
            for name, spec in specs.items()}


def test_client_grpc_and_rest_requests_run_through_the_signatures(exports):
    client = _client()
    model, loaded, _ = exports["valid"]
    image = _image((33, 47), np.uint8, seed=9)
    expected = predict_tiled(model, image, tile_size=VALID_TILE)
    requests = [client.encoded_grpc_request([_png(image)]),
                client.image_grpc_request(image[None, ..., None])]
    for request in requests:
        signature = loaded.signatures[request.model_spec.signature_name]
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        assert np.abs(signature(**inputs)["probabilities"][0] - expected).max() < 1e-4
    for body in (client.encoded_rest_body([_png(image)]),
                 client.image_rest_body(image[None, ..., None])):
        signature = loaded.signatures[body["signature_name"]]
        outputs = signature(**_rest_to_inputs(body, signature))
        assert np.abs(outputs["probabilities"][0] - expected).max() < 1e-4


def test_client_decodes_a_rest_reply_as_tf_serving_writes_it(exports):
    client = _client()
    outputs = exports["valid"][1].signatures["encoded"](
        image_bytes=tf.constant([_png(_image((20, 30), np.uint8))]))
    reply = {"predictions": [{  # row format; string outputs named *_bytes come as {"b64": ...}
        "labels_png_bytes": {"b64": base64.b64encode(outputs["labels_png_bytes"][0].numpy())
                             .decode()},
        "probabilities": outputs["probabilities"][0].numpy().tolist()}]}
    decoded = client.rest_outputs(json.loads(json.dumps(reply))["predictions"])
    mask = np.asarray(Image.open(io.BytesIO(decoded["labels_png_bytes"][0])))
    np.testing.assert_array_equal(mask, mask_from_probabilities(decoded["probabilities"][0]))


@pytest.mark.parametrize("name", ["encoded.json", "image.json"])
def test_example_request_files_run_through_the_signatures(exports, name):
    body = json.loads((SERVING / "requests" / name).read_text())
    signature = exports["valid"][1].signatures[body["signature_name"]]
    image = next(iter(_rest_to_inputs(body, signature).values()))
    outputs = signature(**_rest_to_inputs(body, signature))
    height, width = (48, 64) if name == "encoded.json" else image.shape[1:3]
    assert outputs["probabilities"].shape == (1, height, width, 2)


def test_deployment_files_parse_and_agree():
    config = text_format.Parse((SERVING / "models.config").read_text(),
                               model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.name == "unet" and model.model_platform == "tensorflow"
    compose = yaml.safe_load((SERVING / "docker-compose.yml").read_text())
    service = compose["services"]["unet"]
    assert service["image"].startswith("tensorflow/serving:")
    assert {"8500:8500", "8501:8501"} <= set(service["ports"])
    mounts = dict(reversed(volume.rsplit(":", 2)[:2]) for volume in service["volumes"])
    assert model.base_path in mounts and mounts["/config/models.config"] == "./models.config"
    flags = dict(arg.split("=", 1) for arg in service["command"])
    assert flags["--model_config_file"] == "/config/models.config"
    assert mounts[flags["--batching_parameters_file"]] == "./batching_parameters.txt"
    parameters = text_format.Parse((SERVING / "batching_parameters.txt").read_text(),
                                   _batching_parameters_class()())
    assert parameters.max_batch_size.value == parameters.allowed_batch_sizes[-1]
    assert not parameters.pad_variable_length_inputs


def _batching_parameters_class():
    """tensorflow.serving.BatchingParameters (session_bundle_config.proto, not in the pip API)."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(name="batching.proto", package="tensorflow.serving",
                                              syntax="proto3",
                                              dependency=["google/protobuf/wrappers.proto"])
    message = file.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    for number, (name, kind) in enumerate([
            ("max_batch_size", ".google.protobuf.Int64Value"),
            ("batch_timeout_micros", ".google.protobuf.Int64Value"),
            ("max_enqueued_batches", ".google.protobuf.Int64Value"),
            ("num_batch_threads", ".google.protobuf.Int64Value"),
            ("thread_pool_name", ".google.protobuf.StringValue")], start=1):
        message.field.add(name=name, number=number, type=field.TYPE_MESSAGE, type_name=kind,
                          label=field.LABEL_OPTIONAL)
    message.field.add(name="allowed_batch_sizes", number=6, type=field.TYPE_INT64,
                      label=field.LABEL_REPEATED)
    message.field.add(name="pad_variable_length_inputs", number=7, type=field.TYPE_BOOL,
                      label=field.LABEL_OPTIONAL)
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


# Versions: next number, atomic, never overwritten ------------------------------------------

def _tree(path):
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


@pytest.fixture
def tiny_model():
    return build_unet((None, None, 1), 2, filters=2, depth=1, padding="same")


def _fake_versions(base, *versions):
    """Version folders as TF-Serving sees them (their content does not matter here)."""
    for version in versions:
        (base / str(version) / "variables").mkdir(parents=True)
        (base / str(version) / "saved_model.pb").write_bytes(b"version %d" % version)
    return _tree(base)


def test_versions_count_up_and_an_existing_one_is_never_replaced(tmp_path, tiny_model):
    base = tmp_path / "unet"
    before = _fake_versions(base, 1, 5)
    (base / ".tmp-9-leftover").mkdir()  # not a number: neither a version nor counted
    with pytest.raises(FileExistsError, match="version 5 already exists.*write 6"):
        export_for_serving(tiny_model, base, version=5, warmup=False)
    assert _tree(base) == before
    assert export_for_serving(tiny_model, base, warmup=False) == base / "6"
    assert sorted(os.listdir(base)) == [".tmp-9-leftover", "1", "5", "6"]  # no new temporary
    assert _tree(base) == {**before, **{f"6/{k}": v for k, v in _tree(base / "6").items()}}
    assert existing_versions(base) == [1, 5, 6]


def test_a_failed_export_leaves_nothing(tmp_path, tiny_model, monkeypatch):
    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(export_module, "write_warmup", broken)
    with pytest.raises(FaultError, match=r"^version '.*unet/1' could not be written: disk full"):
        export_for_serving(tiny_model, tmp_path / "unet")
    assert os.listdir(tmp_path / "unet") == []


def test_an_export_that_loses_its_version_to_another_says_to_run_again(tmp_path, tiny_model,
                                                                        monkeypatch):
    base, write = tmp_path / "unet", export_module._write_version

    def another_export_finishes_first(temporary, final, *args, **kwargs):
        write(temporary, final, *args, **kwargs)
        final.mkdir()
        (final / "saved_model.pb").write_bytes(b"the other export's")

    monkeypatch.setattr(export_module, "_write_version", another_export_finishes_first)
    with pytest.raises(FileExistsError) as refused:
        export_for_serving(tiny_model, base, warmup=False)
    assert str(refused.value) == (
        f"version 1 appeared in {str(base)!r} while this export was writing it (another "
        "export?); it was left as it is. Run the export again: it writes version 2.")
    assert "--overwrite" not in str(refused.value)  # no such option for versions
    assert _tree(base) == {"1/saved_model.pb": b"the other export's"}  # and no temporary


@pytest.mark.parametrize("kwargs, error, match", [
    ({"version": 0}, ValueError, "version must be a positive integer"),
    ({"max_image_pixels": 0}, ValueError, "max_image_pixels must be a positive integer"),
    ({"tile_size": 31}, ValueError, "tile_size 31"),
])
def test_bad_arguments_are_refused_before_writing(tmp_path, tiny_model, kwargs, error, match):
    with pytest.raises(error, match=match):
        export_for_serving(tiny_model, tmp_path / "unet", **kwargs)
    assert not (tmp_path / "unet").exists()


def test_cli_exports_a_keras_file(tmp_path, tiny_model, capsys):
    tiny_model.save(tmp_path / "m.keras")
    assert main(["export", "--model", str(tmp_path / "m.keras"), "--out",
                 str(tmp_path / "base"), "--no-warmup"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "base" / "1")
    assert (tmp_path / "base" / "1" / "saved_model.pb").is_file()


@pytest.mark.parametrize("case, match", [
    ("not_a_model", "is not a Keras model: a .keras file is a zip archive and this file is not"),
    ("zip_not_a_model", "is not a loadable Keras model: "),
    ("base_is_file", "is a file"),
    ("version_exists", "version 1 already exists"),
])
def test_cli_refuses_bad_input_and_keeps_existing_versions(tmp_path, tiny_model, capsys, case,
                                                           match):
    model, base = tmp_path / "m.keras", tmp_path / "base"
    before = _fake_versions(base, 1)
    args = ["export", "--model", str(model), "--out", str(base)]
    if case == "not_a_model":
        model.write_text("not a model")
    elif case == "zip_not_a_model":
        with zipfile.ZipFile(model, "w") as archive:
            archive.writestr("notes.txt", "not a model")
    else:
        tiny_model.save(model)
    if case == "base_is_file":
        args[4] = str(tmp_path / "m.keras")
    if case == "version_exists":
        args += ["--version", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("unet export: error:") and match in err and len(err.splitlines()) == 1
    assert _tree(base) == before and model.exists()


def test_unet_predict_reads_the_export(exports, tmp_path):
    model, _, path = exports["valid"]
    image = _image((40, 57), np.uint8, seed=11)
    Image.fromarray(image).save(tmp_path / "x.png")
    assert main(["predict", "--model", str(path), "--input", str(tmp_path / "x.png"),
                 "--output", str(tmp_path / "out")]) == 0
    expected = mask_from_probabilities(predict_tiled(model, image, tile_size=VALID_TILE))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "x.png")), expected)


def test_the_export_says_what_it_is(exports):
    model, _, path = exports["valid"]
    record = read_export_metadata(path)
    assert record["geometry"] == model_geometry(model).to_json()
    assert ModelGeometry.from_json(record["geometry"]) == model_geometry(model)
    assert record["geometry"]["class_names"] == ["background", "cell"]
    assert record["normalization"] == "in_graph" and record["tile_size"] == [VALID_TILE] * 2
    assert set(record["signatures"]) == {"serving_default", "encoded"}
    assert read_export_metadata(path.parent) is None  # a folder without a record: foreign
