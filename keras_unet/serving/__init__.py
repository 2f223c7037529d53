"""TF-Serving export: a SavedModel that segments raw images of any size by itself.

:func:`export_for_serving` writes ``BASE/<version>/`` (``saved_model.pb``, ``variables/``,
``assets.extra/tf_serving_warmup_requests``) atomically; the graph normalises, mirrors, tiles
and stitches inside (:mod:`~keras_unet.serving.graph`), with the signatures of
:mod:`~keras_unet.serving.signatures`. The deployment kit (models.config, batching, compose
file, example clients) is in the repository's ``serving/`` folder.

Example:
    >>> from keras_unet.serving import export_for_serving  # see its docstring for a full run
    >>> DEFAULT_MAX_IMAGE_PIXELS // 2**20  # Mpx a request may send per image by default
    64
"""

from keras_unet.serving.export import (
    DEFAULT_MAX_IMAGE_PIXELS,
    export_for_serving,
    read_export_metadata,
)

__all__ = ["DEFAULT_MAX_IMAGE_PIXELS", "export_for_serving", "read_export_metadata"]

# ONNX and bioimage.io (issue 15): the onnxruntime wrapper, and the two exports, whose
# converters (tf2onnx, bioimageio.spec) load only when one is used.
import importlib  # noqa: E402

from keras_unet.serving.onnx_network import OnnxNetwork  # noqa: E402

_PORTABLE_EXPORTS = {"export_onnx": "onnx_export", "export_bioimageio": "bioimageio"}

__all__ += ["OnnxNetwork", *_PORTABLE_EXPORTS]


def __getattr__(name: str):
    if name in _PORTABLE_EXPORTS:
        module = importlib.import_module(f"keras_unet.serving.{_PORTABLE_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'keras_unet.serving' has no attribute {name!r}")
