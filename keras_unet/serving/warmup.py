"""The warmup file TF-Serving replays when it loads a version, so the first request is not slow.

``assets.extra/tf_serving_warmup_requests`` is a TFRecord of ``PredictionLog`` protos
(``tensorflow_serving.apis``); TF-Serving runs each request once before it marks the version
available. We write one request per signature on a :data:`WARMUP_SIZE` square image, the size
of a typical request, so the kernels for full tiles are primed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_unet.errors import InputError
from keras_unet.serving.signatures import (
    BYTES_INPUT,
    DEFAULT_SIGNATURE,
    ENCODED_SIGNATURE,
    IMAGE_INPUT,
)

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
WARMUP_SIZE = 512
WARMUP_VOLUME_SIZE = 64
"""A 3D model's warmup volume side (64^3 voxels)."""


def warmup_image(channels: int, size: int = WARMUP_SIZE, ndim: int = 2) -> np.ndarray:
    """A deterministic uint8 test pattern (size, size, channels) with structure at all scales
    (a volume's (size, size, size, channels) for ``ndim=3``).

    Example:
        >>> warmup_image(1, 8).shape, warmup_image(1, 8).dtype
        ((8, 8, 1), dtype('uint8'))
    """
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (*[size] * ndim, channels), dtype=np.uint8)


def warmup_logs(model_name: str, signatures: list[str], channels: int,
                size: int = WARMUP_SIZE, ndim: int = 2) -> list:
    """One ``PredictionLog`` per signature, each a ``PredictRequest`` on one warmup image.

    Example:
        >>> logs = warmup_logs("unet", ["serving_default"], 1, size=4)
        >>> request = logs[0].predict_log.request
        >>> request.model_spec.signature_name, tf.make_ndarray(request.inputs["image"]).shape
        ('serving_default', (1, 4, 4, 1))
    """
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    image = warmup_image(channels, size, ndim)
    logs = []
    for signature in signatures:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature
        if signature == DEFAULT_SIGNATURE:
            tensor = tf.make_tensor_proto(image[None].astype(np.float32))
            request.inputs[IMAGE_INPUT].CopyFrom(tensor)
        elif signature == ENCODED_SIGNATURE:
            png = tf.io.encode_png(image).numpy()
            request.inputs[BYTES_INPUT].CopyFrom(tf.make_tensor_proto([png]))
        else:
            raise InputError(f"no warmup request for signature {signature!r}.")
        logs.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup(version_dir: Path, logs: list) -> Path:
    """Writes the logs as TFRecord to ``version_dir/assets.extra/tf_serving_warmup_requests``.

    Example:
        >>> import tempfile
        >>> path = write_warmup(Path(tempfile.mkdtemp()), warmup_logs("unet", ["encoded"], 1, 4))
        >>> path.relative_to(path.parents[1]).as_posix()
        'assets.extra/tf_serving_warmup_requests'
    """
    path = Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path
