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

from keras_unet.serving.export import DEFAULT_MAX_IMAGE_PIXELS, export_for_serving

__all__ = ["DEFAULT_MAX_IMAGE_PIXELS", "export_for_serving"]
