"""The bare network for runtimes that tile by themselves: float32, no normalisation, no tiling.

ONNX files and the bioimage.io package carry the U-Net alone (normalised tiles in, class scores
out); their consumers normalise and tile as the package describes. Whatever policy the model
was trained under (``mixed_bfloat16``, ``mixed_float16``), the exported network computes in
float32, with the trained weights (which mixed precision keeps in float32 anyway).
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from keras_unet.inference.network import model_geometry


def float32_network(model: keras.Model) -> keras.Model:
    """A float32 copy of a U-Net, with the same weights, whatever its dtype policy.

    Raises:
        ValueError: if ``model`` is not a U-Net from :func:`keras_unet.build_unet`.

    Example:
        >>> from keras_unet import build_unet
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> twin = float32_network(model)
        >>> {layer.dtype_policy.compute_dtype for layer in twin.layers}
        {'float32'}
    """
    model_geometry(model)  # refuses what is not a U-Net of this package

    def float32_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    twin = keras.models.clone_model(model, clone_function=float32_layer)
    twin.set_weights(model.get_weights())
    return twin


def final_activation(model: keras.Model) -> str | None:
    """``"softmax"`` if the model ends with the softmax :func:`build_unet` puts there, else None.

    Example:
        >>> from keras_unet import build_unet
        >>> final_activation(build_unet((None, None, 1), 2, filters=4, depth=2, final_activation=None))
    """  # noqa: E501
    activation = model.layers[-1].get_config().get("activation")
    return "softmax" if activation == "softmax" else None


def write_bare_saved_model(model: keras.Model, folder: Path, output_name: str) -> None:
    """Writes the float32 network as a SavedModel with one endpoint, ``serve``.

    ``serve`` (also the ``serving_default`` signature) takes float32 ``(batch, y, x, c)`` tiles of
    any valid size and returns ``{output_name: scores}``, as ``keras.layers.TFSMLayer`` and
    bioimage.io's TensorFlow runner call it.

    Example:
        >>> import tempfile
        >>> from keras_unet import build_unet
        >>> folder = Path(tempfile.mkdtemp()) / "bare"
        >>> write_bare_saved_model(build_unet((None, None, 1), 2, filters=4, depth=2), folder,
        ...                        "probabilities")
        >>> serve = keras.layers.TFSMLayer(str(folder), call_endpoint="serve")
        >>> serve(tf.zeros((1, 44, 44, 1)))["probabilities"].shape
        TensorShape([1, 4, 4, 2])
    """
    geom = model_geometry(model)
    network = float32_network(model)
    archive = keras.export.ExportArchive()
    archive.track(network)
    archive.add_endpoint(
        "serve", lambda image: {output_name: network(image, training=False)},
        input_signature=[tf.TensorSpec((None, *geom.input_size, geom.channels), tf.float32,
                                       name="image")])
    archive.write_out(str(folder), verbose=False)
