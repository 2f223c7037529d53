"""Example client for the exported U-Net behind TF-Serving, over gRPC (8500) or REST (8501).

    python serving/client.py cells.png --out cells_mask.png              # gRPC, signature "encoded"
    python serving/client.py cells.png --out cells_mask.png --rest       # the same over REST
    python serving/client.py cells.png --out cells_mask.png --raw        # float32 pixels instead

The server does all the work (normalisation, tiling, any image size): the client sends the
file's bytes (``encoded``) or its pixels (``serving_default``) and gets the PNG mask and the
class probabilities back. It needs ``pip install tensorflow-serving-api`` (which brings
TensorFlow, grpcio and protobuf) and nothing from keras_unet. A bad argument or file is one
line and exit code 2; a server that cannot be reached or refuses the request, one line (with
the server's own message) and exit code 1. An existing ``--out`` is kept unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import grpc
import numpy as np


def _quiet_tensorflow():
    """Imports TensorFlow and lists its devices with stderr held back: on a machine without a
    GPU its C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL (tensorflow/tensorflow#100442)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow

        tensorflow.config.list_physical_devices()
        return tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


tf = _quiet_tensorflow()
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

MODEL_NAME = "unet"
GRPC_TARGET = "localhost:8500"
REST_URL = "http://localhost:8501"


def _model_spec(request, model: str, signature: str, version: int | None) -> None:
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version


def encoded_grpc_request(files: list[bytes], *, model: str = MODEL_NAME,
                         version: int | None = None) -> predict_pb2.PredictRequest:
    """gRPC request of the ``encoded`` signature: PNG/JPEG files of one size, as bytes."""
    request = predict_pb2.PredictRequest()
    _model_spec(request, model, "encoded", version)
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(list(files), dtype=tf.string))
    return request


def image_grpc_request(images: np.ndarray, *, model: str = MODEL_NAME,
                       version: int | None = None) -> predict_pb2.PredictRequest:
    """gRPC request of ``serving_default``: a (batch, height, width, channels) pixel array."""
    request = predict_pb2.PredictRequest()
    _model_spec(request, model, "serving_default", version)
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(np.asarray(images, np.float32)))
    return request


def encoded_rest_body(files: list[bytes]) -> dict:
    """REST body of the ``encoded`` signature (row format, bytes as ``{"b64": ...}``)."""
    return {"signature_name": "encoded",
            "instances": [{"image_bytes": {"b64": base64.b64encode(data).decode("ascii")}}
                          for data in files]}


def image_rest_body(images: np.ndarray) -> dict:
    """REST body of ``serving_default``: one nested list per image (row format)."""
    return {"signature_name": "serving_default",
            "instances": np.asarray(images, np.float32).tolist()}


def predict_grpc(request: predict_pb2.PredictRequest, target: str = GRPC_TARGET,
                 timeout: float = 60.0) -> dict[str, np.ndarray]:
    """Sends a PredictRequest to TF-Serving's gRPC port; returns the outputs as arrays."""
    options = [("grpc.max_send_message_length", 2**30),
               ("grpc.max_receive_message_length", 2**30)]
    with grpc.insecure_channel(target, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout)
    return {name: tf.make_ndarray(tensor) for name, tensor in response.outputs.items()}


def predict_rest(body: dict, url: str = REST_URL, model: str = MODEL_NAME,
                 version: int | None = None, timeout: float = 60.0) -> dict[str, np.ndarray]:
    """POSTs a row-format body to TF-Serving's REST API; returns the outputs as arrays."""
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    post = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                  headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(post, timeout=timeout) as reply:
        predictions = json.load(reply)["predictions"]
    return rest_outputs(predictions)


def rest_outputs(predictions: list) -> dict[str, np.ndarray]:
    """The outputs of a row-format REST reply, ``{"b64": ...}`` strings decoded to bytes."""
    def value(item):
        return base64.b64decode(item["b64"]) if isinstance(item, dict) else item

    names = predictions[0].keys()
    return {name: np.array([value(item[name]) for item in predictions],
                           dtype=object if isinstance(predictions[0][name], dict) else None)
            for name in names}


def read_file_and_pixels(path: Path) -> tuple[bytes, np.ndarray]:
    """The file's bytes and its pixels (H, W, C) as TensorFlow decodes PNG/JPEG."""
    data = path.read_bytes()
    if not data.startswith((b"\x89PNG", b"\xff\xd8")):
        raise ValueError("not a PNG or JPEG file")
    dtype = tf.uint16 if data[24:25] == b"\x10" and data[:4] == b"\x89PNG" else tf.uint8
    return data, tf.io.decode_image(data, dtype=dtype, expand_animations=False).numpy()


def refused(error: Exception) -> str:
    """Why a request failed, in one line: the connection's error or the server's message."""
    if isinstance(error, grpc.RpcError):
        return f"{error.code().name}: {error.details()}"
    if isinstance(error, urllib.error.HTTPError):  # TF-Serving's body: {"error": "..."}
        body = error.read().decode(errors="replace")
        try:
            body = json.loads(body).get("error", body)
        except (ValueError, AttributeError):
            pass
        return f"HTTP {error.code}: {' '.join(str(body).split())}"
    return str(getattr(error, "reason", error))


def write_new(path: Path, data: bytes, overwrite: bool) -> None:
    """Writes ``data`` whole under ``path``: under a temporary name first, then linked into
    place (which fails if ``path`` exists) or, with ``overwrite``, renamed over it. keras_unet
    has the same rule in its one writer; this client must not need keras_unet."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        temporary.write_bytes(data)  # a full disk leaves only the temporary, removed below
        if overwrite:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if path exists, unlike a rename
    finally:
        temporary.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """Segments one PNG/JPEG through a running TF-Serving and writes the PNG mask."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", type=Path, help="a PNG or JPEG file")
    parser.add_argument("--out", type=Path, required=True,
                        help="PNG file for the mask (0/255; with --raw the class numbers 0, 1..)")
    parser.add_argument("--rest", action="store_true", help="use REST (8501) instead of gRPC")
    parser.add_argument("--raw", action="store_true",
                        help="send pixels (serving_default) instead of the file (encoded)")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--model", default=MODEL_NAME)
    parser.add_argument("--version", type=int, default=None, help="default: the newest")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    try:
        data, pixels = read_file_and_pixels(args.image)
    except (OSError, ValueError, tf.errors.OpError) as error:
        print(f"client.py: error: {args.image}: {getattr(error, 'strerror', None) or error}",
              file=sys.stderr)
        return 2
    if (args.out.exists() or args.out.is_symlink()) and not args.overwrite:
        print(f"client.py: error: --out {args.out} already exists; pass --overwrite to replace "
              "it", file=sys.stderr)
        return 2
    server = f"http://{args.host}:8501" if args.rest else f"{args.host}:8500"
    try:
        if args.rest:
            body = image_rest_body(pixels[None]) if args.raw else encoded_rest_body([data])
            outputs = predict_rest(body, server, args.model, args.version)
        else:
            request = (image_grpc_request(pixels[None], model=args.model, version=args.version)
                       if args.raw else encoded_grpc_request([data], model=args.model,
                                                             version=args.version))
            outputs = predict_grpc(request, server)
    except (grpc.RpcError, OSError) as error:  # urllib's errors are OSErrors
        print(f"client.py: error: {server}: {refused(error)}", file=sys.stderr)
        return 1
    if "labels_png_bytes" in outputs:  # the server's 8-bit mask, 0/255 for two classes
        mask = outputs["labels_png_bytes"][0]
    else:  # serving_default gives the class of every pixel: 0, 1, ...
        labels = np.asarray(outputs["labels"][0], np.uint8)[..., None]
        mask = tf.io.encode_png(labels).numpy()
    try:
        write_new(args.out, mask, args.overwrite)
    except OSError as error:
        print(f"client.py: error: --out {args.out}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(f"{args.image} -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
