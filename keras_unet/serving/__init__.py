"""TF-Serving export: a SavedModel that segments raw images of any size by itself.

:func:`export_for_serving` writes ``BASE/<version>/`` (``saved_model.pb``, ``variables/``,
``assets.extra/tf_serving_warmup_requests``) atomically; the graph normalises, mirrors, tiles
and stitches inside (:mod:`~keras_unet.serving.graph`), with the signatures of
:mod:`~keras_unet.serving.signatures`. The deployment kit (models.config, batching, compose
file, example clients) is in the repository's ``serving/`` folder. For runtimes that tile
themselves: :func:`export_onnx`, :func:`export_bioimageio` and :class:`OnnxNetwork`. Names load
on first use: where an export goes is checked (:mod:`~keras_unet.serving.targets`) without
TensorFlow, tf2onnx or bioimageio.spec.

Example:
    >>> from keras_unet.serving import DEFAULT_MAX_IMAGE_PIXELS, export_for_serving
    >>> DEFAULT_MAX_IMAGE_PIXELS // 2**20  # Mpx a request may send per image by default
    64
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "bioimageio": ["export_bioimageio"],
        "export": ["export_for_serving", "read_export_metadata"],
        "onnx_export": ["export_onnx"],
        "onnx_network": ["OnnxNetwork"],
        "targets": ["DEFAULT_MAX_IMAGE_PIXELS"],
    },
)
