"""Sample data: synthetic touching cells and their masks, to try the loop with no data of one's own.

The same generator as ``unet train``'s demo data (:func:`keras_unet.data.synthetic_cells`),
with another seed, so the demo model has never seen the image, and a larger size, so there are
cells to correct.
"""

from __future__ import annotations

from typing import Any

from keras_unet.data.synthetic import synthetic_cells

SAMPLE_SIZE = 512
"""Side of the sample image in pixels."""

SAMPLE_SEED = 25
"""Seed of the sample image; the demo data of ``unet train`` uses seed 0."""


def synthetic_cells_sample() -> list[tuple[Any, dict, str]]:
    """The synthetic cell image and its cell masks as napari layer data (data, meta, type).

    Example:
        >>> [(kind, meta["name"], data.shape) for data, meta, kind in synthetic_cells_sample()]
        [('image', 'synthetic cells', (512, 512)), ('labels', 'synthetic cells masks', (512, 512))]
    """
    [sample] = synthetic_cells(1, size=SAMPLE_SIZE, seed=SAMPLE_SEED)
    return [(sample.image, {"name": "synthetic cells"}, "image"),
            (sample.labels, {"name": "synthetic cells masks"}, "labels")]
