"""Writing samples back to disk in the ``images/`` + ``masks/`` layout that the readers read.

``unet train`` writes its validation images this way, so the ``unet predict`` and ``unet
evaluate`` commands it prints have files to run on. 8-bit grey or RGB images are written as
PNG (any viewer opens them), others as TIFF in their own dtype; labels (instance ids or class
indices) as 16-bit TIFF (32-bit past 65,535), the label format napari and Fiji open, with
unlabelled pixels written as the dataset's ``ignore_label``, so the readers read them back alike.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from keras_unet.atomic_write import written_atomically
from keras_unet.class_layout import UNLABELLED
from keras_unet.data.samples import Sample
from keras_unet.errors import InputError


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
        if image.dtype == np.uint8 and (image.ndim == 2 or image.shape[-1] in (1, 3)):
            path = folder / "images" / f"{name}.png"
            Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1
                            else image).save(path)
        else:
            path = folder / "images" / f"{name}.tif"
            tifffile.imwrite(path, image, photometric="minisblack" if image.ndim == 2 else None)
        write_instances(folder / "masks" / f"{name}.tif",
                        _with_ignore_label(sample, ignore_label))
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


def write_instances(path: Path, labels: np.ndarray) -> None:
    """Writes instance labels as a TIFF label image: uint16, or uint32 beyond 65,535 objects.

    Raises:
        ValueError: for labels that are not 0..N integers of a (H, W) image.

    Example:
        >>> import tempfile, tifffile
        >>> path = Path(tempfile.mkdtemp()) / "a_instances.tif"
        >>> write_instances(path, np.array([[0, 1], [2, 2]]))
        >>> tifffile.imread(path).dtype
        dtype('uint16')
    """
    labels = np.asarray(labels)
    largest = np.iinfo(np.uint32).max
    if (labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer)
            or labels.min(initial=0) < 0 or labels.max(initial=0) > largest):
        raise InputError(f"instance labels must be a (H, W) image of integers 0..{largest}, "
                         f"got shape {labels.shape} and dtype {labels.dtype}.")
    dtype = np.uint16 if labels.max(initial=0) <= np.iinfo(np.uint16).max else np.uint32
    tifffile.imwrite(path, labels.astype(dtype), photometric="minisblack")


def write_class_mask(path: Path, mask: np.ndarray, num_classes: int) -> None:
    """Writes a class mask: a PNG with one palette colour per class, or a TIFF, atomically.

    A PNG of up to 256 classes is a palette image whose indices are the classes and whose
    colours are :func:`keras_unet.class_layout.class_colour` (viewers show the colours,
    readers get the indices); more classes give a 16-bit PNG. Masks of the 2- and 3-class
    cell layouts (0/255, 0/127/254) stay plain grey PNGs. TIFFs hold the values as they are.
    The file is written under a temporary name and renamed, so no half-written mask remains.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "a.png"
        >>> write_class_mask(path, np.array([[0, 3, 4]], "uint8"), num_classes=5)
        >>> image = Image.open(path)
        >>> image.mode, np.asarray(image).tolist(), image.getpalette()[9:12]
        ('P', [[0, 3, 4]], [255, 225, 25])
    """
    from keras_unet.class_layout import class_colour

    path = Path(path)
    with written_atomically(path, overwrite=True) as temporary:
        if path.suffix.lower() in (".tif", ".tiff"):
            tifffile.imwrite(temporary, mask, photometric="minisblack")
        elif num_classes > 3 and mask.dtype == np.uint8:
            image = Image.fromarray(mask, mode="P")
            image.putpalette([value for index in range(256) for value in class_colour(index)])
            image.save(temporary)
        else:
            Image.fromarray(mask).save(temporary)
