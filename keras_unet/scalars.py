"""Scalar arguments as the library's checks and saved configs take them: a NumPy integer (what
``masks.max() + 1`` gives) is the Python ``int`` it holds, as Keras itself accepts it."""

from __future__ import annotations

import numbers


def python_int(value):
    """``value`` as a Python ``int`` if it is an integer of any type but bool, else unchanged,
    for the caller's own check to accept or refuse.

    Example:
        >>> import numpy as np
        >>> python_int(np.int64(3)), python_int(3.0), python_int(True)
        (3, 3.0, True)
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value
