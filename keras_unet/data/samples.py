"""The one in-memory form of a labelled image that readers produce and pipelines consume."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Sample:
    """A training or evaluation image with its instance labels.

    Attributes:
        image: ``(H, W)`` or ``(H, W, C)`` array of any real dtype (uint8, uint16, float).
        labels: ``(H, W)`` integer instance labels: 0 is background, each cell has its own
            positive id (readers turn binary masks into instances by connected components).
        path: where the sample came from (a file path, or e.g. ``"synthetic:3"``), used in
            every error message about it.

    Example:
        >>> import numpy as np
        >>> sample = Sample(np.zeros((4, 4), "uint8"), np.zeros((4, 4), "int32"), "a.png")
        >>> sample.path, sample.image.shape
        ('a.png', (4, 4))
    """

    image: np.ndarray
    labels: np.ndarray
    path: str
