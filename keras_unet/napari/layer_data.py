"""napari layers as the arrays the library takes: the planes of an image, labels to train on.

A napari image layer may be grey or RGB(A), 2D or a stack (any leading axes), in memory or lazy
(dask, zarr) and multiscale. :func:`image_input` reads what prediction needs from it without
loading a lazy layer: level 0 of a multiscale layer, the two spatial axes (the last two, or the
two before the colour axis of an RGB layer), the alpha channel dropped as ``unet predict``
drops it from a PNG, and where the layer sits (``scale``, ``translate``), which the widgets copy
to the layers they add. :func:`training_pair` copies an image and the labels painted on it for
fine-tuning; :meth:`TrainingPair.samples` turns them into :class:`keras_unet.data.Sample`
labels, where a partial sketch's 0 is "not annotated". No napari import: a layer is anything
with the attributes napari's layers have.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from keras_unet.class_layout import UNLABELLED
from keras_unet.errors import InputError

BACKGROUND = 1
"""In partial labels, the label of pixels known to be background (0 is "not annotated"); the
labels above it are cells, or for a model of classes, class ``label - 1``."""


@dataclasses.dataclass(frozen=True)
class ImageInput:
    """What prediction reads from an image layer.

    Attributes:
        name: the layer's name, for messages and the names of the layers made from it.
        data: the pixels of level 0: a NumPy array, or a dask array for a lazy or multiscale
            layer (read block by block).
        rgb: whether the last axis holds colours (RGB; an alpha channel is already dropped).
        lazy: whether the pixels are predicted block by block, without loading the image.
        scale, translate: where the layer sits in the viewer (per axis of the layer).

    Example:
        >>> from types import SimpleNamespace
        >>> layer = SimpleNamespace(name="cells", data=np.zeros((3, 20, 30), "uint16"),
        ...                         multiscale=False, rgb=False, scale=(1, 0.5, 0.5),
        ...                         translate=(0, 0, 0))
        >>> image = image_input(layer)
        >>> image.stack_shape, image.plane_shape, [index for index, _ in image.planes()]
        ((3,), (20, 30), [(0,), (1,), (2,)])
    """

    name: str
    data: Any
    rgb: bool
    lazy: bool
    scale: tuple[float, ...]
    translate: tuple[float, ...]

    @property
    def stack_shape(self) -> tuple[int, ...]:
        """The leading axes over which the planes are stacked (``()`` for a 2D image)."""
        return tuple(int(n) for n in self.data.shape[:self.data.ndim - (3 if self.rgb else 2)])

    @property
    def plane_shape(self) -> tuple[int, int]:
        """Height and width of one plane."""
        start = len(self.stack_shape)
        return int(self.data.shape[start]), int(self.data.shape[start + 1])

    @property
    def labels_shape(self) -> tuple[int, ...]:
        """The shape of labels painted on this image (the layer's shape without colours)."""
        return self.stack_shape + self.plane_shape

    def planes(self) -> Iterator[tuple[tuple[int, ...], Any]]:
        """``(index, plane)`` of every 2D plane, ``(H, W)`` or ``(H, W, 3)``, in order."""
        for index in np.ndindex(*self.stack_shape):
            yield index, self.data[index]


def image_input(layer) -> ImageInput:
    """Reads a napari image layer as an :class:`ImageInput` (no pixel of a lazy layer is read).

    Raises:
        ValueError: for a layer with fewer than two spatial axes.

    Example:
        >>> from types import SimpleNamespace
        >>> rgba = SimpleNamespace(name="photo", data=np.zeros((8, 9, 4), "uint8"),
        ...                        multiscale=False, rgb=True, scale=(1, 1), translate=(5, 0))
        >>> image = image_input(rgba)
        >>> image.data.shape, image.lazy, image.translate
        ((8, 9, 3), False, (5.0, 0.0))
    """
    multiscale = bool(getattr(layer, "multiscale", False))
    data = layer.data[0] if multiscale else layer.data
    lazy = multiscale or not isinstance(data, np.ndarray)
    if lazy:
        import dask.array

        data = dask.array.asarray(data)
    rgb = bool(getattr(layer, "rgb", False))
    if data.ndim < (3 if rgb else 2):
        raise InputError(f"image {layer.name!r} has shape {tuple(data.shape)}; expected a 2D "
                         "image or a stack of them.")
    if rgb and data.shape[-1] == 4:
        data = data[..., :3]
    return ImageInput(layer.name, data, rgb, lazy, tuple(float(s) for s in layer.scale),
                      tuple(float(t) for t in layer.translate))


@dataclasses.dataclass(frozen=True)
class TrainingPair:
    """An image and the labels painted on it, copied when added to the training set.

    Attributes:
        image: the pixels (a copy), with the layer's stack axes.
        labels: the labels (a copy): instance ids or class indices, 0 background; with
            ``partial``, 0 is "not annotated" and :data:`BACKGROUND` is background.
        rgb: whether the image's last axis holds colours.
        partial: whether the labels are a sparse sketch.
        name: ``"image / labels"``, as the widget lists the pair.

    Example:
        >>> image = np.zeros((4, 5), "uint8")
        >>> sketch = np.zeros((4, 5), "int32"); sketch[0] = BACKGROUND; sketch[2, 1:3] = 7
        >>> pair = TrainingPair(image, sketch, False, True, "a / sketch")
        >>> pair.samples(semantic=False)[0].labels
        array([[ 0,  0,  0,  0,  0],
               [-1, -1, -1, -1, -1],
               [-1,  7,  7, -1, -1],
               [-1, -1, -1, -1, -1]])
    """

    image: np.ndarray
    labels: np.ndarray
    rgb: bool
    partial: bool
    name: str

    def samples(self, *, semantic: bool) -> list:
        """One :class:`keras_unet.data.Sample` per plane with labels; unlabelled pixels -1.

        ``semantic``: the model predicts classes, so a partial label ``v`` is class ``v - 1``.

        Raises:
            ValueError: if partial labels of cells mark no background (the network would learn
                that everything is a cell).
        """
        from keras_unet.data.samples import Sample

        samples = []
        stack = self.labels.shape[:-2]
        for index in np.ndindex(*stack):
            labels = self.labels[index].astype(np.int64)
            if self.partial:
                if not (labels > 0).any():
                    continue  # a plane of a stack that was not annotated
                converted = np.full(labels.shape, UNLABELLED, np.int64)
                converted[labels == BACKGROUND] = 0
                marked = labels > BACKGROUND
                converted[marked] = labels[marked] - 1 if semantic else labels[marked]
                labels = converted
            where = f"[{', '.join(map(str, index))}]" if stack else ""
            samples.append(Sample(self.image[index], labels, f"napari:{self.name}{where}"))
        if self.partial and not semantic and not any((s.labels == 0).any() for s in samples):
            raise InputError(f"partial labels {self.name!r} mark no background: paint some "
                             f"pixels without cells with label {BACKGROUND} (0 means not "
                             "annotated).")
        return samples


def training_pair(image_layer, labels_layer, *, partial: bool = False) -> TrainingPair:
    """Copies an image layer and the labels layer painted on it into a :class:`TrainingPair`.

    Raises:
        ValueError: for labels of another shape than the image's planes, negative labels, or
            partial labels with nothing annotated.

    Example:
        >>> from types import SimpleNamespace
        >>> image = SimpleNamespace(name="a", data=np.zeros((6, 7)), multiscale=False, rgb=False,
        ...                         scale=(1, 1), translate=(0, 0))
        >>> labels = SimpleNamespace(name="a cells", data=np.zeros((6, 8), "int32"),
        ...                          multiscale=False)
        >>> training_pair(image, labels)
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: labels 'a cells' have shape (6, 8), but image 'a' has ...
    """
    image = image_input(image_layer)
    labels = labels_layer.data[0] if getattr(labels_layer, "multiscale", False) \
        else labels_layer.data
    if tuple(labels.shape) != image.labels_shape:
        raise InputError(f"labels {labels_layer.name!r} have shape {tuple(labels.shape)}, but "
                         f"image {image.name!r} has {image.labels_shape}; choose the labels "
                         "painted on that image.")
    labels = np.array(labels)  # a copy: painting on after adding does not change the pair
    if labels.size and labels.min() < 0:
        raise InputError(f"labels {labels_layer.name!r} hold negative values; labels are 0 "
                         "(background) and positive ids.")
    if partial and not (labels > 0).any():
        raise InputError(f"partial labels {labels_layer.name!r} annotate no pixel: paint cells "
                         f"(labels {BACKGROUND + 1} and up) and background ({BACKGROUND}).")
    return TrainingPair(np.array(image.data), labels, image.rgb, partial,
                        f"{image.name} / {labels_layer.name}")
