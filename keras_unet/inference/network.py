"""What the tiling engine needs to know about a network, and how it runs one on tiles.

A network is a Keras U-Net (its geometry read from the arguments :class:`keras_unet.model.UNet`
records, or, for models saved before it did, from its layers) or any object with a
``geometry: ModelGeometry`` attribute and a ``predict_tiles(tiles) -> probabilities`` method,
such as an ONNX Runtime session wrapper.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import keras
import numpy as np
import tensorflow as tf

from keras_unet import geometry
from keras_unet.class_layout import ClassLayout
from keras_unet.errors import InputError
from keras_unet.layers import CropToMatch
from keras_unet.model import UNet


@dataclasses.dataclass(frozen=True)
class ModelGeometry:
    """What tiling needs to know about a U-Net.

    Attributes:
        depth: number of 2x2 max-pooling steps.
        padding: ``"valid"`` (output smaller than input by ``2 * border``) or ``"same"``.
        channels: image channels the model takes.
        num_classes: channels of the output (class probabilities).
        input_size: fixed ``(height, width)`` (a volume's ``(depth, height, width)``) of the
            model's input; ``None`` entries are free. Its length is the number of spatial axes.
        filters: channels of the first level (to estimate memory per tile).
        class_names: what each output channel means (default:
            :func:`keras_unet.class_layout.default_class_names`).
        labels: ``"instances"`` or ``"semantic"`` (default: read from the class count,
            :func:`keras_unet.class_layout.label_mode`).
        spacing: the voxel size per axis the model was built for, if it says.
        pooling, kernel_sizes: per level, the pooling factor and kernel size of each axis
            (``None``: 2 and 3 everywhere, :mod:`keras_unet.geometry`).

    Example:
        >>> geom = ModelGeometry(4, "valid", 1, 2, (None, None), 64)
        >>> geom.border, geom.class_names  # the paper's 92 px
        (92, ('background', 'cell'))
        >>> ModelGeometry(2, "valid", 1, 2, (None,) * 3, 4, pooling=((1, 2, 2), (2, 2, 2)),
        ...               kernel_sizes=((1, 3, 3), (3, 3, 3), (3, 3, 3))).borders
        (8, 20, 20)
    """

    depth: int
    padding: str
    channels: int
    num_classes: int
    input_size: tuple[int | None, int | None]
    filters: int
    class_names: tuple[str, ...] | None = None
    labels: str | None = None
    spacing: tuple[float, ...] | None = None
    pooling: tuple[tuple[int, ...], ...] | None = None
    kernel_sizes: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        layout = ClassLayout.of(self.num_classes, self.labels, self.class_names)
        object.__setattr__(self, "class_names", layout.class_names)
        object.__setattr__(self, "labels", layout.labels)
        object.__setattr__(self, "input_size", tuple(self.input_size))
        if self.spacing is not None:
            object.__setattr__(self, "spacing", tuple(float(v) for v in self.spacing))
        for name in ("pooling", "kernel_sizes"):
            table = getattr(self, name)
            if table is not None:
                object.__setattr__(self, name, tuple(tuple(int(v) for v in row)
                                                     for row in table))

    @property
    def ndim(self) -> int:
        """Spatial axes: 2 (images) or 3 (volumes)."""
        return len(self.input_size)

    @property
    def axis_layouts(self) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """``(pools, kernels)`` of every axis (:func:`keras_unet.geometry.axis_layouts`)."""
        return geometry.axis_layouts(self.ndim, self.depth, self.pooling, self.kernel_sizes)

    @property
    def borders(self) -> tuple[int, ...]:
        """Pixels of context lost on each side, per axis (0 for "same" padding)."""
        return tuple(geometry.border(self.depth, self.padding, pools=pools, kernels=kernels)
                     for pools, kernels in self.axis_layouts)

    @property
    def grids(self) -> tuple[int, ...]:
        """The pooling grid of every axis (``2**depth`` when it pools at every level)."""
        return tuple(geometry.grid(self.depth, pools) for pools, _ in self.axis_layouts)

    @property
    def layout(self) -> ClassLayout:
        """What the output channels mean and how masks hold them."""
        return ClassLayout(self.num_classes, self.labels, self.class_names)

    @property
    def border(self) -> int:
        """Pixels of context lost on each side (0 for "same" padding), the same on every axis;
        an anisotropic volume has one per axis (:attr:`borders`)."""
        borders = set(self.borders)
        if len(borders) > 1:
            raise InputError(f"the model's border differs per axis, {self.borders}; use "
                             "ModelGeometry.borders.")
        return borders.pop()

    def to_json(self) -> dict:
        """The geometry as a JSON-ready dict (what an exported SavedModel records; a layout a
        2D model does not have is left out, as keras_unet 0.4 wrote it)."""
        return {field.name: _as_lists(value) for field in dataclasses.fields(self)
                for value in [getattr(self, field.name)]
                if value is not None or field.name not in OPTIONAL_FIELDS}

    @classmethod
    def from_json(cls, data: dict) -> ModelGeometry:
        """The inverse of :meth:`to_json` (records written before ``labels`` existed read too)."""
        return cls(**{field.name: data[field.name] for field in dataclasses.fields(cls)
                      if field.name in data})


OPTIONAL_FIELDS = ("spacing", "pooling", "kernel_sizes")
"""Fields of :class:`ModelGeometry` that a record leaves out when they are ``None``."""


def _as_lists(value):
    return [_as_lists(item) for item in value] if isinstance(value, (tuple, list)) else value


@runtime_checkable
class TileNetwork(Protocol):
    """A network other than a Keras model: its geometry and a call on normalised tiles.

    ``predict_tiles`` takes float32 (N, h, w, C) normalised tiles (volumes: (N, d, h, w, C))
    and returns float32 (N, h', w', K) probabilities, h' and w' as :mod:`keras_unet.geometry`
    gives them.
    """

    geometry: ModelGeometry

    def predict_tiles(self, tiles: np.ndarray) -> np.ndarray: ...


def model_geometry(model: keras.Model | TileNetwork) -> ModelGeometry:
    """The geometry of a U-Net: recorded by :func:`keras_unet.build_unet`, else read.

    A :class:`keras_unet.model.UNet` carries its construction arguments; a plain functional
    model (saved before models recorded their arguments) is inspected: the depth is its number
    of ``MaxPooling2D`` layers, valid padding means ``CropToMatch`` layers, and the result is
    checked against its ``compute_output_shape``. A :class:`TileNetwork` gives its own.

    Raises:
        ValueError: if the model is not a U-Net that can be tiled.

    Example:
        >>> from keras_unet import build_unet
        >>> model_geometry(build_unet((None, None, 3), 2, filters=4, depth=2))
        ModelGeometry(depth=2, padding='valid', channels=3, num_classes=2,
                      input_size=(None, None), filters=4, class_names=('background', 'cell'),
                      labels='instances', spacing=None, pooling=None, kernel_sizes=None)
    """
    if isinstance(model, UNet):
        arguments = model.arguments
        *sizes, channels = arguments["input_shape"]
        return ModelGeometry(arguments["depth"], arguments["padding"], channels,
                             arguments["num_classes"], tuple(sizes), arguments["filters"],
                             arguments["class_names"], arguments["labels"],
                             arguments.get("spacing"), arguments.get("pooling"),
                             arguments.get("kernel_sizes"))
    if not isinstance(model, keras.Model):
        if isinstance(model, TileNetwork) and isinstance(model.geometry, ModelGeometry):
            return model.geometry
        raise InputError(f"model must be a keras.Model or have a `geometry: ModelGeometry` and "
                         f"a `predict_tiles` method, got {type(model).__name__}.")
    return _inspected_geometry(model)


def _inspected_geometry(model: keras.Model) -> ModelGeometry:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(
            f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; tiled prediction needs one image input and one probability output."
        )
    layers = list(_walk(model))
    depth = sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in layers)
    if depth == 0:
        raise InputError(
            f"model {model.name!r} has no MaxPooling2D layer, so it is not a U-Net whose depth "
            "tiling can read; build it with keras_unet.build_unet."
        )
    padding = "valid" if any(isinstance(layer, CropToMatch) for layer in layers) else "same"
    convs = [layer for layer in layers if isinstance(layer, keras.layers.Conv2D)]
    _, height, width, channels = model.input_shape
    probe = geometry.valid_tile_size(64, depth, padding)
    probe_shape = (1, height or probe, width or probe, channels)
    out_shape = tuple(model.compute_output_shape(probe_shape))
    expected = tuple(geometry.output_size(size, depth, padding) for size in probe_shape[1:3])
    if out_shape[1:3] != expected:
        raise InputError(
            f"model {model.name!r} maps a {probe_shape[1]}x{probe_shape[2]} input to "
            f"{out_shape[1]}x{out_shape[2]}, but a depth-{depth} {padding}-padding U-Net gives "
            f"{expected[0]}x{expected[1]}; it is not a U-Net that can be tiled."
        )
    return ModelGeometry(depth, padding, int(channels), int(out_shape[-1]), (height, width),
                         int(convs[0].filters) if convs else 1)


def _walk(layer) -> Iterator[keras.layers.Layer]:
    for sub in getattr(layer, "layers", ()):
        yield sub
        yield from _walk(sub)


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled_forward(model: keras.Model, geom: ModelGeometry) -> tf.types.experimental.Function:
    """The model's inference call as one ``tf.function`` per model, traced once for all tiles.

    The input signature leaves batch, height and width free (unless the model fixes them), so
    batches of any size and rotated tiles reuse the same graph.
    """
    forward = _COMPILED.get(model)
    if forward is None:
        ref = weakref.ref(model)
        spec = tf.TensorSpec((None, *geom.input_size, geom.channels), tf.float32)
        forward = tf.function(lambda tiles: ref()(tiles, training=False), input_signature=[spec])
        _COMPILED[model] = forward
    return forward


def tile_predictor(network: keras.Model | TileNetwork):
    """``(geometry, predict_tiles)`` of a network: float32 NHWC tiles in, probabilities out.

    Example:
        >>> from keras_unet import build_unet
        >>> geom, predict_tiles = tile_predictor(build_unet((None, None, 1), 2, filters=4, depth=2))
        >>> predict_tiles(np.zeros((3, 44, 60, 1), "float32")).shape
        (3, 4, 20, 2)
    """
    geom = model_geometry(network)
    if isinstance(network, keras.Model):  # the closure keeps the model alive, not `forward`
        return geom, lambda tiles: np.asarray(compiled_forward(network, geom)(tiles), np.float32)
    return geom, lambda tiles: np.asarray(network.predict_tiles(tiles), np.float32)
