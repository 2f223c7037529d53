"""Fine-tuning: start a new network from the weights of a trained keras_unet model.

The trained model must have the new network's geometry (depth, padding, filters, channels, as
:func:`keras_unet.inference.model_geometry` reads them) and the same layers (batch norm,
up-sampling); every layer's weights are copied, except the final 1x1 convolution when the number
of classes differs: that one layer keeps its fresh initialisation, so a cell model can start a
tissue-type model.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from keras_unet.errors import InputError, InputNotFoundError
from keras_unet.inference import model_geometry

FINAL_LAYER = "final_conv"
"""The name :func:`keras_unet.build_unet` gives the 1x1 convolution that scores the classes."""

COMPARED = ("depth", "padding", "filters", "channels")
"""The geometry that must match between the trained model and the new network."""


def load_init_model(path: str | os.PathLike, source: str = "init") -> keras.Model:
    """Loads a trained keras_unet model to start from, refusing anything else in one line.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming ``source`` and ``path``, if the file is not a ``.keras`` U-Net.

    Example:
        >>> import tempfile
        >>> from keras_unet import build_unet
        >>> path = Path(tempfile.mkdtemp()) / "cells.keras"
        >>> build_unet((None, None, 1), 2, filters=4, depth=2).save(path)
        >>> load_init_model(path).name
        'unet'
        >>> load_init_model(path.with_name("notes.txt"))
        Traceback (most recent call last):
        ...
        FileNotFoundError: init '/tmp/.../notes.txt' does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{source} {str(path)!r} does not exist.")
    if path.suffix != ".keras":
        raise InputError(f"{source} {str(path)!r} is not a .keras model file (a checkpoint "
                         "such as runs/NAME/checkpoints/best.keras).")
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
        model_geometry(model)
    except Exception as error:  # Keras raises many types for a file that is not a model
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"{source} {str(path)!r} is not a keras_unet model ({reason}).") from None
    return model


def transfer_weights(trained: keras.Model, model: keras.Model, source: str = "init") -> bool:
    """Copies ``trained``'s weights into ``model``; returns whether the final layer was re-created.

    Raises:
        ValueError: naming ``source`` and the first geometry argument (or layer) that differs.

    Example:
        >>> from keras_unet import build_unet
        >>> cells = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> tissue = build_unet((None, None, 1), 4, filters=4, depth=2)
        >>> transfer_weights(cells, tissue)  # 2 -> 4 classes: only final_conv is new
        True
        >>> transfer_weights(cells, build_unet((None, None, 1), 2, filters=4, depth=3))
        Traceback (most recent call last):
        ...
        ValueError: init model has depth 2 but the network to train has depth 3; ...
    """
    have, want = model_geometry(trained), model_geometry(model)
    for name in COMPARED:
        if getattr(have, name) != getattr(want, name):
            raise InputError(f"{source} model has {name} {getattr(have, name)!r} but the network "
                             f"to train has {name} {getattr(want, name)!r}; fine-tuning needs "
                             f"the same {', '.join(COMPARED)} (set --{name} to match).")
    trained_layers = {layer.name: layer for layer in trained.layers if layer.weights}
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    if trained_layers.keys() != layers.keys():
        differ = sorted(trained_layers.keys() ^ layers.keys())
        raise InputError(f"{source} model and the network to train differ in layers "
                         f"{', '.join(differ[:4])}: batch_norm or upsampling differ.")
    recreated = have.num_classes != want.num_classes
    for name, layer in layers.items():
        if name == FINAL_LAYER and recreated:
            continue
        weights = trained_layers[name].get_weights()
        if [w.shape for w in weights] != [tuple(v.shape) for v in layer.weights]:
            raise InputError(f"{source} model's layer {name!r} has weights of another shape "
                             "than the network to train's.")
        layer.set_weights(weights)
    return recreated
