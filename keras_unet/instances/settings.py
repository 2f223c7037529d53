"""Cell settings: how a model's probabilities become cells, and where that choice is recorded.

``unet train`` chooses the instance method's ``min_size`` on its validation images (as StarDist
chooses its thresholds) and records the choice in the model: in the ``.keras`` file (the
``cells`` of :class:`keras_unet.model.UNet`'s config), in an exported SavedModel's
``keras_unet.json``, in the ONNX metadata and in the bioimage.io description. ``unet predict``,
``unet evaluate``, block-wise prediction and :func:`keras_unet.instances.instance_labels` given a
model then use it; an explicit value always wins. Models saved before there was a record get
:data:`MIN_SIZE` and ``"auto"``. No SciPy here, so the command line reads it quickly.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

from keras_unet.errors import InputError

METHODS = ("auto", "components", "watershed", "membranes")
"""How :func:`keras_unet.instances.instance_labels` finds objects."""

MIN_SIZE = 10
"""Default smallest object in pixels: below the smallest cells of the package's data (12 px in
:mod:`keras_unet.data.synthetic`, hundreds in the paper's), above the specks of a noisy map."""

VERSION = 1
"""The version of the record :meth:`CellSettings.to_json` writes; a newer one is not read."""


@dataclasses.dataclass(frozen=True)
class CellSettings:
    """The instance method and the smallest cell kept, and where they came from.

    Attributes:
        method: one of :data:`METHODS`.
        min_size: smallest cell kept, in pixels (>= 0).
        source: where the values came from, for messages: ``"the defaults"``, ``"the model"``,
            ``"the command line"``.

    Example:
        >>> settings = CellSettings.from_json({"version": 1, "method": "auto", "min_size": 100},
        ...                                   "the model")
        >>> settings.options, settings.describe()
        ({'method': 'auto', 'min_size': 100}, 'method auto, min_size 100 (from the model)')
        >>> settings.replaced(min_size=30).describe()
        'method auto, min_size 30 (from the command line; the rest from the model)'
    """

    method: str = "auto"
    min_size: int = MIN_SIZE
    source: str = "the defaults"

    def __post_init__(self) -> None:
        check_method(self.method)
        check_min_size(self.min_size)

    @property
    def options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`keras_unet.instances.instance_labels`."""
        return {"method": self.method, "min_size": int(self.min_size)}

    def to_json(self) -> dict[str, Any]:
        """The record a model carries: ``{"version", "method", "min_size"}``."""
        return {"version": VERSION, **self.options}

    @classmethod
    def from_json(cls, record: Any, source: str = "the model") -> CellSettings:
        """Reads a record of :meth:`to_json`.

        Raises:
            ValueError: for a record that is not one, or one of a newer version.
        """
        if not isinstance(record, dict) or not isinstance(record.get("version"), int):
            raise InputError(f"its cell settings are not a record of keras_unet's "
                             f"(got {str(record)[:80]!r})")
        if record["version"] > VERSION:
            raise InputError(f"its cell settings are of version {record['version']}, written by "
                             f"a newer keras_unet (this one reads version {VERSION})")
        try:
            return cls(record["method"], record["min_size"], source)
        except (KeyError, ValueError) as error:
            raise InputError(f"its cell settings are malformed ({error})") from None

    def replaced(self, *, method: str | None = None, min_size: int | None = None
                 ) -> CellSettings:
        """These settings with the values given (``None``: kept); the source says which."""
        given = {name: value for name, value in (("method", method), ("min_size", min_size))
                 if value is not None}
        if not given:
            return self
        source = "the command line" + ("" if len(given) == 2 or self.source == "the defaults"
                                       else f"; the rest from {self.source.removeprefix('from ')}")
        return dataclasses.replace(self, **given, source=source)

    def describe(self) -> str:
        """``method auto, min_size 100 (from the model)``: what ``unet predict`` prints."""
        return f"method {self.method}, min_size {self.min_size} (from {self.source})"


def check_method(method: Any) -> str:
    """Refuses a method that is not one of :data:`METHODS`.

    Example:
        >>> check_method("membranes")
        'membranes'
    """
    if not isinstance(method, str) or method not in METHODS:
        raise InputError(f"method must be one of {', '.join(map(repr, METHODS))}, got "
                         f"{method!r}.")
    return method


def check_min_size(min_size: Any) -> int:
    """Refuses a ``min_size`` that is not an integer >= 0.

    Example:
        >>> check_min_size(30)
        30
    """
    if isinstance(min_size, bool) or not isinstance(min_size, numbers.Integral) or min_size < 0:
        raise InputError(f"min_size must be an integer >= 0 (pixels), got {min_size!r}.")
    return int(min_size)


def recorded_settings(record: Any, name: str) -> tuple[CellSettings, str | None]:
    """The settings a model recorded, or the defaults and a one-line note saying why.

    ``record`` is what the model carries (``None`` for a model saved before models recorded
    their cells: the defaults, silently); ``name`` names the model file in the note.

    Example:
        >>> recorded_settings(None, "old.keras")
        (CellSettings(method='auto', min_size=10, source='the defaults'), None)
        >>> recorded_settings({"version": 9}, "new.keras")[1]
        "'new.keras': its cell settings are of version 9, ... using the defaults (method auto, min_size 10)."
    """  # noqa: E501
    if record is None:
        return CellSettings(), None
    try:
        return CellSettings.from_json(record), None
    except ValueError as error:
        defaults = CellSettings()
        return defaults, (f"{name!r}: {error}; using the defaults (method {defaults.method}, "
                          f"min_size {defaults.min_size}).")


def settings_of(model: Any) -> CellSettings:
    """The cell settings a model carries: a :class:`keras_unet.model.UNet`, a network opened by
    :func:`keras_unet.inference.load_network`, or None (the defaults).

    Example:
        >>> settings_of(None)
        CellSettings(method='auto', min_size=10, source='the defaults')
    """
    if model is None:
        return CellSettings()
    carried = getattr(model, "cells", None)
    if isinstance(carried, CellSettings):
        return carried
    arguments = getattr(model, "arguments", None)
    record = arguments.get("cells") if isinstance(arguments, dict) else None
    settings, note = recorded_settings(record, getattr(model, "name", "model"))
    if note:
        import warnings

        warnings.warn(note, stacklevel=3)
    return settings
