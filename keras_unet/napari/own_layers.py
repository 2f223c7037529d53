"""Which layers the plugin made, so that a second run replaces its own layers and never the user's.

Every layer a widget adds carries a mark in its ``metadata``: its role (``"cells"``,
``"classes"``, ``"foreground"``), the image layer it was made from, and a checksum of the data
written. A later run of the same role on the same image replaces that layer's data only while
the checksum still matches: once the user has painted on it (corrected cells to fine-tune on),
it is theirs, and the new result goes to a new layer beside it. No napari import: a layer is
anything with ``data`` and ``metadata``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np

MARK = "keras_unet"
"""The ``metadata`` key of the mark."""


def checksum(data) -> str:
    """A digest of an array's shape, dtype and values (what was written, to see later edits).

    Example:
        >>> a = np.zeros((2, 3), "int32")
        >>> checksum(a) == checksum(a.copy()), checksum(a) == checksum(a.astype("int64"))
        (True, False)
    """
    array = np.ascontiguousarray(data)
    digest = hashlib.blake2b(f"{array.shape}{array.dtype}".encode(), digest_size=16)
    digest.update(array.view(np.uint8).reshape(-1) if array.size else b"")
    return digest.hexdigest()


def mark(role: str, source: str, data) -> dict[str, Any]:
    """The ``metadata`` of a layer of ``role`` made from the image layer named ``source``.

    Example:
        >>> sorted(mark("cells", "image", np.zeros(3))[MARK])
        ['checksum', 'role', 'source']
    """
    return {MARK: {"role": role, "source": source, "checksum": checksum(data)}}


def own_layer(layers: Iterable, role: str, source: str):
    """The layer of ``role`` made from ``source`` that still holds what was written, else None.

    Example:
        >>> from types import SimpleNamespace
        >>> cells = np.ones((2, 2), "int32")
        >>> ours = SimpleNamespace(data=cells, metadata=mark("cells", "image", cells))
        >>> own_layer([ours], "cells", "image") is ours
        True
        >>> ours.data[0, 0] = 2  # painted on: now the user's
        >>> own_layer([ours], "cells", "image") is None
        True
    """
    for layer in layers:
        record = getattr(layer, "metadata", {}).get(MARK)
        if (isinstance(record, dict) and record.get("role") == role
                and record.get("source") == source
                and record.get("checksum") == checksum(layer.data)):
            return layer
    return None
