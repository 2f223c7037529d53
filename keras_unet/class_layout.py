"""The classes a model predicts and how masks are read, for every module that makes or reads them.

Two label modes. ``"instances"``: masks hold cells (binary, or one id per cell) and the classes
are derived from them: class 0 is background and class 1 cell; a 3-class model adds class 2, the
border ring of each cell where it touches another cell or the background
(:func:`keras_unet.weight_maps.class_labels` draws it). ``"semantic"``: masks hold class indices
``0..K-1`` directly, any ``K >= 2``. In both, pixels a reader marks as unlabelled (the user's
``ignore_label``) carry :data:`UNLABELLED`. Kept apart from the NumPy/SciPy code so that the
command line can check a config without loading SciPy.

Example:
    >>> NUM_CLASSES, CLASS_NAMES[3], LABEL_MODES, UNLABELLED
    ((2, 3), ('background', 'cell', 'border'), ('instances', 'semantic'), -1)
"""

from __future__ import annotations

from collections.abc import Sequence

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
        ValueError: --class-names gives 2 names (a, b) but the model has 3 classes.
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
