"""Fine-tuning: start a new network from the weights of a trained keras_unet model.

The new network has the trained model's geometry (depth, padding, filters, channels, as
:func:`keras_unet.inference.model_geometry` reads them; the run takes what its config leaves at
the defaults from the model) and the same layers (batch norm, up-sampling); every layer's
weights are copied, except the final 1x1 convolution when the number of classes differs: that
one layer keeps its fresh initialisation, so a cell model can start a tissue-type model.
"""

from __future__ import annotations

import os

import keras

from keras_unet.errors import InputError
from keras_unet.inference.network import ModelGeometry, model_geometry
from keras_unet.io.paths import existing_input
from keras_unet.training.config import TrainConfig

FINAL_LAYER = "final_conv"
"""The name :func:`keras_unet.build_unet` gives the 1x1 convolution that scores the classes."""

COMPARED = ("ndim", "depth", "padding", "filters", "channels")
"""The geometry that must match between the trained model and the new network."""

INHERITED_GEOMETRY = ("depth", "filters", "padding")
"""The geometry a fine-tuning run takes from its model unless the config sets it (the number of
spatial axes and the channels come from the images)."""


def load_init_model(path: str | os.PathLike, source: str = "init") -> keras.Model:
    """Opens a trained keras_unet model to start from (:func:`keras_unet.inference.load_network`),
    refusing anything but a ``.keras`` U-Net in one line.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming ``source`` and ``path``, if the file is not a ``.keras`` U-Net.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from keras_unet import build_unet
        >>> path = Path(tempfile.mkdtemp()) / "cells.keras"
        >>> build_unet((None, None, 1), 2, filters=4, depth=2).save(path)
        >>> load_init_model(path).name
        'unet'
        >>> load_init_model(path.with_name("notes.txt"))
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputNotFoundError: init '/tmp/.../notes.txt' does not exist.
    """
    from keras_unet.inference.loading import load_network

    path = existing_input(path, source)
    if path.is_file() and path.suffix.lower() != ".keras":
        raise InputError(f"{source} {str(path)!r} is not a .keras file; fine-tuning starts from "
                         "one (such as runs/NAME/checkpoints/best.keras).")
    network = load_network(path, option=source)
    if network.keras_model is None:
        raise InputError(f"{source} {str(path)!r} is a {network.kind} model; fine-tuning starts "
                         "from a .keras file (such as runs/NAME/checkpoints/best.keras).")
    return network.keras_model


def inherited_config(config: TrainConfig, trained: keras.Model | None) -> TrainConfig:
    """``config`` with what it leaves unset taken from the model it starts from.

    The class count, the label mode and (for the same classes) the class names of ``trained``
    (``None``: no model to start from; the class count defaults to 2), and its
    :data:`INHERITED_GEOMETRY` where the config keeps :class:`TrainConfig`'s defaults
    (:meth:`TrainConfig.replace_defaults`): the new network must have the model's geometry, so
    `--init` on a ``training/paper.yaml`` run needs no ``--filters 64 --depth 4`` (and a default
    tile then follows that depth: :meth:`TrainConfig.for_images`).

    Raises:
        ValueError: if the values the config and the model give together do not agree.

    Example:
        >>> from keras_unet import build_unet
        >>> trained = build_unet((None, None, 1), 4, filters=4, depth=2, labels="semantic",
        ...                      class_names=["bg", "a", "b", "c"])
        >>> config = inherited_config(TrainConfig(data="d", init="m.keras"), trained)
        >>> config.num_classes, config.labels, config.class_names
        (4, 'semantic', 'bg,a,b,c')
        >>> config.filters, config.depth, config.padding  # the defaults' 16, 3: the model's
        (4, 2, 'valid')
        >>> config.for_images().tile_size  # 100 px of output at depth 2, as 188 px at depth 3
        140
        >>> inherited_config(TrainConfig(), None).num_classes
        2
    """
    if trained is None:
        return config.replace(num_classes=config.classes)
    geometry = model_geometry(trained)
    layout = geometry.layout
    labels = config.labels or layout.labels
    same_mode = labels == layout.labels
    num_classes = config.num_classes or (layout.num_classes if same_mode else 2)
    class_names = config.class_names
    if class_names is None and same_mode and num_classes == layout.num_classes:
        class_names = ",".join(layout.class_names)
    inherited = {name: getattr(geometry, name) for name in INHERITED_GEOMETRY}
    try:
        config = config.replace_defaults(**inherited).replace(
            labels=labels, num_classes=num_classes, class_names=class_names)
    except ValueError as error:
        raise InputError(f"init model {config.init!r} ({layout.num_classes} {layout.labels} "
                         f"classes) and the config: {error}") from None
    return config


def transfer_weights(trained: keras.Model, model: keras.Model, source: str = "init") -> bool:
    """Copies ``trained``'s weights into ``model``; returns whether the final layer was re-created.

    Raises:
        ValueError: naming ``source`` and every geometry argument (or a layer) that differs.

    Example:
        >>> from keras_unet import build_unet
        >>> cells = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> tissue = build_unet((None, None, 1), 4, filters=4, depth=2)
        >>> transfer_weights(cells, tissue)  # 2 -> 4 classes: only final_conv is new
        True
        >>> transfer_weights(cells, build_unet((None, None, 1), 2, filters=4, depth=3))
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: init model has depth 2 but the network to train has depth ...
    """
    have, want = model_geometry(trained), model_geometry(model)
    differ = [name for name in COMPARED if getattr(have, name) != getattr(want, name)]
    if differ:
        raise InputError(f"{source} model has {_listed(have, differ)} but the network to train "
                         f"has {_listed(want, differ)}; fine-tuning needs the same "
                         f"{', '.join(COMPARED)} ({_how_to_match(have, differ)}).")
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


def _listed(geometry: ModelGeometry, names: list[str]) -> str:
    return ", ".join(f"{name} {getattr(geometry, name)!r}" for name in names)


def _how_to_match(trained: ModelGeometry, names: list[str]) -> str:
    """The options that give the new network the trained one's geometry; channels come from the
    images, so for them it says what the images must have."""
    options = " ".join(f"--{name} {getattr(trained, name)}" for name in names
                       if name != "channels")
    hints = [f"pass {options}"] if options else []
    if "channels" in names:
        hints.append(f"train on images of {trained.channels} channel(s)")
    return "; ".join(hints)
