"""The one in-memory form of a labelled image that readers produce and pipelines consume."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Sample:
    """A training or evaluation image with its labels.

    A volume is a sample too: ``image`` ``(D, H, W)`` or ``(D, H, W, C)``, ``labels``
    ``(D, H, W)``, and its voxel size in ``spacing``.

    Attributes:
        image: ``(H, W)`` or ``(H, W, C)`` array of any real dtype (uint8, uint16, float).
        labels: ``(H, W)`` integer labels in the dataset's label mode
            (:data:`keras_unet.class_layout.LABEL_MODES`): instances (0 background, each cell
            its own positive id; readers turn binary masks into instances by connected
            components) or class indices 0..K-1; unlabelled pixels are
            :data:`keras_unet.class_layout.UNLABELLED` in both.
        path: where the sample came from (a file path, or e.g. ``"synthetic:3"``), used in
            every error message about it.
        spacing: the pixel (voxel) size per axis, ``(y, x)`` or ``(z, y, x)``, as the file says
            or as given; ``None``: not known (1 on every axis).

    Example:
        >>> import numpy as np
        >>> sample = Sample(np.zeros((4, 4), "uint8"), np.zeros((4, 4), "int32"), "a.png")
        >>> sample.path, sample.image.shape
        ('a.png', (4, 4))
    """

    image: np.ndarray
    labels: np.ndarray
    path: str
    spacing: tuple[float, ...] | None = None

    @property
    def ndim(self) -> int:
        """Spatial axes: 2 (images) or 3 (volumes), those of the labels."""
        return np.ndim(self.labels)
