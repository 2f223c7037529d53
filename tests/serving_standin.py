"""A stand-in for TF-Serving, for tests that run serving/README.md's commands as typed.

TF-Serving's binary cannot be installed here, so this process plays its part on the ports
the README uses (gRPC 127.0.0.1:8500, REST 127.0.0.1:8501) with the calls the README makes:
``PredictionService/Predict``, ``GET /v1/models/<name>`` and ``POST
/v1/models/<name>[/versions/<n>]:predict`` in the row format, including TF-Serving's
``{"b64": ...}`` for string outputs named ``*_bytes`` and ``{"error": ...}`` with HTTP 400 for
a refused request. It loads every numbered version under the base with
``tf.saved_model.load``, as TF-Serving does, and never imports keras_unet.

    python tests/serving_standin.py serving/models/unet unet    # prints "ready" when serving
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

GRPC_PORT, REST_PORT = 8500, 8501


class Models:
    """Every numbered version under ``base``, loaded; ``run`` calls one signature."""

    def __init__(self, base: Path, name: str):
        self.name = name
        self.versions = {int(p.name): tf.saved_model.load(str(p))
                         for p in sorted(base.iterdir()) if p.name.isdigit()}

    def run(self, version: int | None, signature: str, inputs: dict) -> dict[str, np.ndarray]:
        model = self.versions[version or max(self.versions)]
        function = model.signatures[signature]
        return {name: value.numpy() for name, value in function(**inputs).items()}

    def input_name(self, signature: str) -> str:
        model = self.versions[max(self.versions)]
        return next(iter(model.signatures[signature].structured_input_signature[1]))


def grpc_service(models: Models):
    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 (the proto's name)
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            inputs = {name: tf.constant(tf.make_ndarray(tensor))
                      for name, tensor in request.inputs.items()}
            try:
                outputs = models.run(version, spec.signature_name or "serving_default", inputs)
            except tf.errors.InvalidArgumentError as error:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)
            response = predict_pb2.PredictResponse()
            for name, value in outputs.items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
            return response

    return Service()


def rest_handler(models: Models):
    predict = re.compile(rf"^/v1/models/{models.name}(?:/versions/(\d+))?:predict$")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            if self.path != f"/v1/models/{models.name}":
                return self._reply(404, {"error": f"Servable not found: {self.path}"})
            self._reply(200, {"model_version_status": [
                {"version": str(v), "state": "AVAILABLE",
                 "status": {"error_code": "OK", "error_message": ""}}
                for v in sorted(models.versions, reverse=True)]})

        def do_POST(self):  # noqa: N802
            match = predict.match(self.path)
            if not match:
                return self._reply(404, {"error": f"Servable not found: {self.path}"})
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            signature = body.get("signature_name", "serving_default")
            instances = body["instances"]
            try:
                if isinstance(instances[0], dict):
                    inputs = {name: tf.constant([_value(i[name]) for i in instances])
                              for name in instances[0]}
                else:
                    inputs = {models.input_name(signature):
                              tf.constant(np.asarray(instances, np.float32))}
                version = int(match.group(1)) if match.group(1) else None
                outputs = models.run(version, signature, inputs)
            except tf.errors.InvalidArgumentError as error:
                return self._reply(400, {"error": error.message})
            self._reply(200, {"predictions": [
                {name: _row(name, value[i]) for name, value in outputs.items()}
                for i in range(len(instances))]})

    return Handler


def _value(item):
    return base64.b64decode(item["b64"]) if isinstance(item, dict) else item


def _row(name: str, value):
    if name.endswith("_bytes"):
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value.tolist()


def main(base: str, name: str) -> None:
    models = Models(Path(base), name)
    server = grpc.server(futures.ThreadPoolExecutor(2),
                         options=[("grpc.max_receive_message_length", 2**30),
                                  ("grpc.max_send_message_length", 2**30)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(grpc_service(models),
                                                                        server)
    server.add_insecure_port(f"127.0.0.1:{GRPC_PORT}")
    server.start()
    rest = ThreadingHTTPServer(("127.0.0.1", REST_PORT), rest_handler(models))
    threading.Thread(target=rest.serve_forever, daemon=True).start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main(*sys.argv[1:3])
