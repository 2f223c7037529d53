"""What each class index means, how a mask file encodes it and reads back, which cells it holds.

The one home of the class layout, for every module that makes or reads masks: ``unet predict``'s
PNG and TIFF masks, the OME-Zarr ``labels/mask``, the served ``encoded`` signature, overlays,
TensorBoard panels and evaluation all go through :class:`ClassLayout`.

Two label modes. ``"instances"``: masks hold cells (binary, or one id per cell) and the classes
are derived from them: class 0 is background and class 1 cell; a 3-class model adds class 2, the
border ring of each cell where it touches another cell or the background
(:func:`keras_unet.weight_maps.class_labels` draws it). ``"semantic"``: masks hold class indices
``0..K-1`` directly, any ``K >= 2``. In both, pixels a reader marks as unlabelled (the user's
``ignore_label``) carry :data:`UNLABELLED`. A model records its mode
(:class:`keras_unet.model.UNet`); models saved before it did are read as cells for 2 or 3
classes and semantic beyond.

Mask files: two classes are 0/255 (background, cell), three 0/127/254 (the class times 127), so
that both can be looked at as they are; four or more hold the class indices themselves, uint8 up
to 256 classes and uint16 beyond (:meth:`ClassLayout.encode`, :meth:`ClassLayout.decode`).
Kept apart from SciPy and TensorFlow so that the command line can check a config quickly.

Example:
    >>> NUM_CLASSES, CLASS_NAMES[3], LABEL_MODES, UNLABELLED
    ((2, 3), ('background', 'cell', 'border'), ('instances', 'semantic'), -1)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from keras_unet.errors import InputError

NUM_CLASSES = (2, 3)
"""Class layouts derived from instance labels: background/cell, or background/cell/border."""

CLASS_NAMES = {2: ("background", "cell"), 3: ("background", "cell", "border")}
"""What each class index means, per layout derived from instance labels."""

LABEL_MODES = ("instances", "semantic")
"""How a mask is read: cells (binary or instance ids), or class indices 0..K-1."""

UNLABELLED = -1
"""The value of an unlabelled pixel in ``Sample.labels`` and in class labels: no loss, no score."""

CLASS_COLOURS = ((0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
                 (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60),
                 (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200),
                 (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128))
"""Class k's colour in masks, overlays and TensorBoard panels (background black, then
Trubetskoy's 19 distinct colours); classes beyond them repeat the colours after black."""


def class_colour(index: int) -> tuple[int, int, int]:
    """The RGB colour of class ``index`` (:data:`CLASS_COLOURS`, cycled after the first 20).

    Example:
        >>> class_colour(0), class_colour(1), class_colour(20) == class_colour(1)
        ((0, 0, 0), (230, 25, 75), True)
    """
    if index < len(CLASS_COLOURS):
        return CLASS_COLOURS[index]
    return CLASS_COLOURS[1 + (index - 1) % (len(CLASS_COLOURS) - 1)]


def default_class_names(num_classes: int, labels: str = "instances") -> tuple[str, ...]:
    """Names of the classes when the user gives none: the instance layouts', else ``class_k``.

    Example:
        >>> default_class_names(3), default_class_names(3, "semantic")
        (('background', 'cell', 'border'), ('background', 'class_1', 'class_2'))
    """
    if labels == "instances" and num_classes in CLASS_NAMES:
        return CLASS_NAMES[num_classes]
    return ("background",) + tuple(f"class_{k}" for k in range(1, num_classes))


def parse_class_names(names: str | Sequence[str] | None, num_classes: int,
                      source: str = "class_names") -> tuple[str, ...] | None:
    """Class names from ``"a,b,c"`` or a sequence, checked to name each of ``num_classes`` once.

    Raises:
        ValueError: naming ``source``, for a count other than ``num_classes``, an empty or
            repeated name.

    Example:
        >>> parse_class_names("background, cytoplasm,nucleus", 3)
        ('background', 'cytoplasm', 'nucleus')
        >>> parse_class_names("a,b", 3, "--class-names")
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: --class-names gives 2 names (a, b) but the model has 3 ...
    """
    if names is None:
        return None
    parts = names.split(",") if isinstance(names, str) else list(names)
    parts = tuple(str(part).strip() for part in parts)
    if len(parts) != num_classes:
        raise InputError(f"{source} gives {len(parts)} names ({', '.join(parts)}) but the model "
                         f"has {num_classes} classes.")
    if not all(parts):
        raise InputError(f"{source} has an empty name: {', '.join(parts)}.")
    repeated = sorted({part for part in parts if parts.count(part) > 1})
    if repeated:
        raise InputError(f"{source} names {', '.join(repeated)} more than once.")
    return parts


def label_mode(num_classes: int, recorded: str | None = None) -> str:
    """The label mode of a model: the one it recorded, else cells for 2 or 3 classes.

    Example:
        >>> label_mode(3), label_mode(5), label_mode(3, "semantic")
        ('instances', 'semantic', 'semantic')
    """
    if recorded is not None:
        if recorded not in LABEL_MODES:
            raise InputError(f"label mode must be one of {', '.join(LABEL_MODES)}, got "
                             f"{recorded!r}.")
        return recorded
    return "instances" if num_classes in NUM_CLASSES else "semantic"


def predicted_classes(probabilities) -> np.ndarray:
    """The class of every pixel: the argmax of ``(..., K)`` scores; one sigmoid channel: > 0.5.
    The served graph has this rule in TensorFlow ops, since it cannot call NumPy
    (:func:`keras_unet.serving.graph.class_labels`).

    Example:
        >>> predicted_classes(np.array([[[0.9, 0.1], [0.2, 0.8]]])).tolist()
        [[0, 1]]
        >>> predicted_classes(np.array([[[0.7], [0.2]]])).tolist()
        [[1, 0]]
    """
    probabilities = np.asarray(probabilities)
    if probabilities.shape[-1] == 1:
        return (probabilities[..., 0] > 0.5).astype(np.int32)
    return np.argmax(probabilities, axis=-1).astype(np.int32)


@dataclasses.dataclass(frozen=True)
class ClassLayout:
    """The classes of a model: how many, what they mean, how masks hold them.

    Attributes:
        num_classes: K, the output channels (a one-channel sigmoid counts as 2 classes).
        labels: ``"instances"`` (background, cell[, border]: cells can be made of it) or
            ``"semantic"`` (class indices, no cells).
        class_names: one name per class.

    Example:
        >>> layout = ClassLayout.of(3)
        >>> layout.labels, layout.instance_method, layout.encode(np.array([0, 1, 2])).tolist()
        ('instances', 'watershed', [0, 127, 254])
        >>> ClassLayout.of(5).decode(np.array([0, 3, 4], "uint8")).tolist()
        [0, 3, 4]
    """

    num_classes: int
    labels: str
    class_names: tuple[str, ...]

    @classmethod
    def of(cls, num_classes: int, labels: str | None = None,
           class_names: Sequence[str] | None = None) -> ClassLayout:
        """The layout of a K-class model, filling in the recorded mode and names when absent.

        Example:
            >>> ClassLayout.of(2).class_names, ClassLayout.of(4).labels
            (('background', 'cell'), 'semantic')
        """
        num_classes = max(int(num_classes), 2)
        mode = label_mode(num_classes, labels)
        names = (parse_class_names(class_names, num_classes)
                 or default_class_names(num_classes, mode))
        return cls(num_classes, mode, names)

    @property
    def cells(self) -> bool:
        """Whether the classes describe cells (background, cell[, border]) that become instances."""
        return self.labels == "instances" and self.num_classes in NUM_CLASSES

    def require_cells(self, model: str) -> None:
        """Refuses instances of a model whose classes are not cells (``--instances``).

        Example:
            >>> ClassLayout.of(4).require_cells("tissue.keras")
            Traceback (most recent call last):
            ...
            keras_unet.errors.InputError: --instances needs a model of cells (2 or 3 classes); ...
        """
        if not self.cells:
            raise InputError(f"--instances needs a model of cells (2 or 3 classes); --model "
                             f"{model!r} has {self.num_classes} {self.labels} classes.")

    @property
    def instance_method(self) -> str | None:
        """The way to cells that suits the layout (:func:`keras_unet.instances.instance_labels`'s
        ``"auto"``): the seeded watershed of the border ring, else connected components; None
        for semantic classes."""
        if not self.cells:
            return None
        return "watershed" if self.num_classes == 3 else "components"

    @property
    def mask_scale(self) -> int:
        """The factor from class index to mask value: 255 (2 classes), 127 (3), else 1."""
        return 255 // (self.num_classes - 1) if self.num_classes <= 3 else 1

    @property
    def mask_dtype(self) -> np.dtype:
        """uint8 up to 256 classes, uint16 beyond."""
        return np.dtype(np.uint8 if self.num_classes <= 256 else np.uint16)

    def encode(self, classes) -> np.ndarray:
        """Class indices as mask file values (0/255, 0/127/254, or the indices)."""
        return (np.asarray(classes) * self.mask_scale).astype(self.mask_dtype)

    def decode(self, mask) -> np.ndarray:
        """Mask file values back to class indices (int32)."""
        return (np.asarray(mask).astype(np.int64) // self.mask_scale).astype(np.int32)

    def mask(self, probabilities) -> np.ndarray:
        """The mask file of class probabilities: :meth:`encode` of :func:`predicted_classes`."""
        return self.encode(predicted_classes(probabilities))

    def to_json(self) -> dict:
        """``{"labels", "class_names"}``, what exports record beside the class count."""
        return {"labels": self.labels, "class_names": list(self.class_names)}


def mask_from_probabilities(probabilities) -> np.ndarray:
    """The mask file of ``(..., K)`` probabilities under the layout of K classes.

    Example:
        >>> mask_from_probabilities(np.array([[[0.9, 0.1], [0.2, 0.8]]])).tolist()
        [[0, 255]]
        >>> mask_from_probabilities(np.eye(5)[[[0, 3, 4]]]).tolist()  # semantic: the indices
        [[0, 3, 4]]
    """
    return ClassLayout.of(np.shape(probabilities)[-1]).mask(probabilities)
