"""The bare U-Net as an ONNX model, for onnxruntime, TensorRT, Triton and bioimage.io's tools.

Converted with tf2onnx from the float32 copy of the network
(:func:`~keras_unet.serving.bare_network.float32_network`): one input ``image``, float32
``(batch, y, x, c)`` normalised tiles with batch, height and width free, and one output,
``probabilities`` (``logits`` for a model built with ``final_activation=None``), float32
``(batch, y', x', classes)``. No tiling or normalisation inside: the consumer tiles (see
:class:`~keras_unet.serving.onnx_network.OnnxNetwork`). The model's geometry and class names
are stored in the file's ``metadata_props`` under :data:`GEOMETRY_KEY` as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import onnx
import onnxruntime
import tensorflow as tf
import tf2onnx

from keras_unet.errors import InputError
from keras_unet.inference.network import model_geometry
from keras_unet.io.atomic import refuse_existing, written_atomically
from keras_unet.serving.bare_network import final_activation, float32_network
from keras_unet.serving.onnx_network import CELLS_KEY, GEOMETRY_KEY
from keras_unet.serving.signatures import PROBABILITIES_OUTPUT

DEFAULT_OPSET = 17
"""ONNX opset written by default: onnxruntime, TensorRT 8.6+ and deepImageJ's runtime read it."""

SUPPORTED_OPSETS = range(12, max(tf2onnx.constants.OPSET_TO_IR_VERSION) + 1)
"""Opsets tf2onnx can write for this network: from 12, the first where it writes the
up-convolution of free-size tiles without its known workaround (9 fails to convert)."""

INPUT_NAME = "image"


def output_name(model: keras.Model) -> str:
    """``"probabilities"`` for a softmax U-Net, ``"logits"`` for one without final activation.

    Example:
        >>> from keras_unet import build_unet
        >>> output_name(build_unet((None, None, 1), 2, filters=4, depth=2))
        'probabilities'
    """
    return PROBABILITIES_OUTPUT if final_activation(model) == "softmax" else "logits"


def check_opset(opset: int) -> None:
    """Refuses an opset tf2onnx cannot write, naming ``--opset``.

    Example:
        >>> check_opset(99)
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: --opset 99 cannot be written by tf2onnx ...; use 12 to 18 ...
    """
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in SUPPORTED_OPSETS:
        raise InputError(
            f"--opset {opset!r} cannot be written by tf2onnx {tf2onnx.__version__}; use "
            f"{SUPPORTED_OPSETS.start} to {SUPPORTED_OPSETS.stop - 1} (default {DEFAULT_OPSET}).")


def onnx_model(model: keras.Model, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Converts a U-Net to an ONNX model in memory (float32, dynamic batch and spatial size).

    Raises:
        ValueError: if the model is not a U-Net of this package or the opset cannot be written.

    Example:
        >>> from keras_unet import build_unet
        >>> proto = onnx_model(build_unet((None, None, 1), 2, filters=4, depth=2))
        >>> [i.name for i in proto.graph.input], [o.name for o in proto.graph.output]
        (['image'], ['probabilities'])
        >>> json.loads(dict((p.key, p.value) for p in proto.metadata_props)[GEOMETRY_KEY])["depth"]
        2
    """
    check_opset(opset)
    geom = model_geometry(model)
    network = float32_network(model)
    spec = (tf.TensorSpec((None, *geom.input_size, geom.channels), tf.float32, name=INPUT_NAME),)
    try:
        proto, _ = tf2onnx.convert.from_keras(network, input_signature=spec, opset=opset)
    except Exception as error:  # tf2onnx raises many types for an op it cannot write
        raise InputError(f"--opset {opset}: tf2onnx could not convert the model "
                         f"({type(error).__name__}: {' '.join(str(error).split())[:200]})."
                         ) from None
    _rename_output(proto, output_name(model))
    properties = {GEOMETRY_KEY: json.dumps(geom.to_json()), "keras_unet.source_model": model.name}
    cells = getattr(model, "arguments", {}).get("cells")
    if cells is not None:
        properties[CELLS_KEY] = json.dumps(cells)
    onnx.helper.set_model_props(proto, properties)
    proto.producer_name = "keras_unet (tf2onnx)"
    onnx.checker.check_model(proto)
    try:  # what the consumers run: refuse a file onnxruntime cannot load
        onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own types
        raise InputError(f"--opset {opset}: onnxruntime {onnxruntime.__version__} cannot load "
                         f"the converted model ({' '.join(str(error).split())[:200]}).") from None
    return proto


def _rename_output(proto: onnx.ModelProto, name: str) -> None:
    (output,) = proto.graph.output
    for node in proto.graph.node:
        node.output[:] = [name if value == output.name else value for value in node.output]
    output.name = name


def export_onnx(model: keras.Model, path, *, opset: int = DEFAULT_OPSET,
                overwrite: bool = False) -> Path:
    """Writes a U-Net as an ONNX file (temporary name, then renamed); returns the path.

    Raises:
        ValueError: if the model is not a U-Net of this package, or for a bad opset or suffix.
        FileExistsError: if ``path`` exists and ``overwrite`` is false.

    Example:
        >>> import tempfile
        >>> import onnxruntime
        >>> from keras_unet import build_unet
        >>> path = export_onnx(build_unet((None, None, 1), 2, filters=4, depth=2),
        ...                    Path(tempfile.mkdtemp()) / "unet.onnx")
        >>> session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        >>> import numpy as np
        >>> session.run(None, {"image": np.zeros((2, 60, 44, 1), "float32")})[0].shape
        (2, 20, 4, 2)
    """
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise InputError(f"--out {str(path)!r} must end in .onnx.")
    check_opset(opset)
    refuse_existing(path, overwrite=overwrite, option="--out")  # before the slow conversion
    proto = onnx_model(model, opset)
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_atomically(path, overwrite=overwrite, option="--out") as temporary:
        onnx.save_model(proto, str(temporary))
    return path
