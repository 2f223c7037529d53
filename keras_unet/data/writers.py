"""Writing samples back to disk in the ``images/`` + ``masks/`` layout that the readers read.

``unet train`` writes its validation images this way, so the ``unet predict`` and ``unet
evaluate`` commands it prints have files to run on. 8-bit grey or RGB images are written as
PNG (any viewer opens them), others as TIFF in their own dtype; labels (instance ids or class
indices) as 16-bit TIFF (32-bit past 65,535), the label format napari and Fiji open, with
unlabelled pixels written as the dataset's ``ignore_label``, so the readers read them back alike.
Volumes are written as TIFF stacks (images and masks) recording their voxel size.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from keras_unet.class_layout import UNLABELLED
from keras_unet.data.samples import Sample
from keras_unet.errors import InputError
from keras_unet.io.atomic import written_atomically
from keras_unet.io.images import write_instances, write_stack


def sample_name(sample: Sample) -> str:
    """A file stem for a sample, from the last part of its path (``synthetic:3`` ->
    ``synthetic_3``, ``images/a.png:rows0-9`` -> ``a_rows0-9``).

    Example:
        >>> sample_name(Sample(np.zeros((2, 2)), np.zeros((2, 2), "int32"), "data/a b.png:rows0-9"))
        'a_b_rows0-9'
    """
    name, *parts = Path(sample.path).name.split(":")  # e.g. "a.png:rows0-9", "synthetic:3"
    stem = "_".join([re.sub(r"\.[A-Za-z0-9]+$", "", name), *parts])
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_") or "sample"


def save_samples(samples: Sequence[Sample], folder: str | os.PathLike, *,
                 ignore_label: int | None = None) -> list[Path]:
    """Writes ``folder/images/<name>`` and ``folder/masks/<name>.tif`` for each sample.

    Names come from :func:`sample_name`, made unique with a numeric suffix; existing files of
    the same names are replaced. Unlabelled pixels are written as ``ignore_label``. Returns the
    image paths, in the order of ``samples``.

    Raises:
        ValueError: naming the sample, if it has unlabelled pixels and ``ignore_label`` is
            ``None``, or a label equal to ``ignore_label``.

    Example:
        >>> import tempfile
        >>> from keras_unet.data import load_samples, synthetic_cells
        >>> folder = Path(tempfile.mkdtemp())
        >>> [path.name for path in save_samples(synthetic_cells(2, size=32), folder)]
        ['synthetic_0.png', 'synthetic_1.png']
        >>> [bool((sample.labels > 0).any()) for sample in load_samples(folder, "instances")]
        [True, True]
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    written, used = [], set()
    for index, sample in enumerate(samples):
        name = sample_name(sample)
        if name in used:
            name = f"{name}_{index}"
        used.add(name)
        image = np.asarray(sample.image)
        volume = np.ndim(sample.labels) == 3
        png = not volume and image.dtype == np.uint8 and (image.ndim == 2
                                                           or image.shape[-1] in (1, 3))
        path = folder / "images" / f"{name}.{'png' if png else 'tif'}"
        with written_atomically(path, overwrite=True) as temporary:
            if volume:
                write_stack(temporary, image, sample.spacing)
            elif png:
                Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1
                                else image).save(temporary, format="PNG")
            else:
                tifffile.imwrite(temporary, image,
                                 photometric="minisblack" if image.ndim == 2 else None)
        write_instances(folder / "masks" / f"{name}.tif",
                        _with_ignore_label(sample, ignore_label), overwrite=True,
                        spacing=sample.spacing if volume else None)
        written.append(path)
    return written


def _with_ignore_label(sample: Sample, ignore_label: int | None) -> np.ndarray:
    """The sample's labels with unlabelled pixels as ``ignore_label``, checked to be readable."""
    labels = np.asarray(sample.labels)
    unlabelled = labels == UNLABELLED
    if not unlabelled.any():
        return labels
    if ignore_label is None:
        raise InputError(f"{sample.path}: has unlabelled pixels; pass the ignore_label to "
                         "write them as.")
    if (labels == ignore_label).any():
        raise InputError(f"{sample.path}: label {ignore_label} is also the ignore_label.")
    return np.where(unlabelled, ignore_label, labels)
