"""Prediction files: class masks, cell labels, probabilities and pictures, written atomically.

Every file goes through :func:`keras_unet.io.atomic.written_atomically`: written under a
temporary name in its final folder and renamed into place when complete. Class masks are
encoded (and read back) by the model's :class:`~keras_unet.class_layout.ClassLayout`: PNGs of
up to 256 semantic classes carry one palette colour per class, the cell layouts stay plain
grey (0/255, 0/127/254); TIFFs hold the values as they are. Cell labels are uint16 TIFFs
(uint32 beyond 65,535 cells), the label format napari, Fiji and CellProfiler open.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from keras_unet.class_layout import ClassLayout, class_colour
from keras_unet.errors import InputError
from keras_unet.io.atomic import written_atomically

TIFF_SUFFIXES = (".tif", ".tiff")


def write_class_mask(path: Path, classes: np.ndarray, layout: ClassLayout, *,
                     overwrite: bool = False) -> Path:
    """Writes class indices as the mask file of ``layout`` (PNG or TIFF, by the suffix).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "a.png"
        >>> _ = write_class_mask(path, np.array([[0, 3, 4]]), ClassLayout.of(5))
        >>> image = Image.open(path)
        >>> image.mode, np.asarray(image).tolist(), image.getpalette()[9:12]
        ('P', [[0, 3, 4]], [255, 225, 25])
        >>> read_class_mask(path, ClassLayout.of(5)).tolist()
        [[0, 3, 4]]
    """
    path = Path(path)
    mask = layout.encode(classes)
    with written_atomically(path, overwrite=overwrite, option="output") as temporary:
        if path.suffix.lower() in TIFF_SUFFIXES:
            tifffile.imwrite(temporary, mask, photometric="minisblack")
        elif not layout.cells and mask.dtype == np.uint8:
            image = Image.fromarray(mask, mode="P")
            image.putpalette([value for index in range(256) for value in class_colour(index)])
            image.save(temporary, format="PNG")
        else:
            Image.fromarray(mask).save(temporary, format="PNG")
    return path


def read_class_mask(path: Path, layout: ClassLayout) -> np.ndarray:
    """The class indices of a mask file that :func:`write_class_mask` wrote (int32)."""
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        return layout.decode(tifffile.imread(path))
    with Image.open(path) as image:
        return layout.decode(np.asarray(image))


def write_instances(path: Path, labels: np.ndarray, *, overwrite: bool = False) -> Path:
    """Writes cell labels as a TIFF label image: uint16, or uint32 beyond 65,535 cells.

    Raises:
        ValueError: for labels that are not 0..N integers of a (H, W) image.

    Example:
        >>> import tempfile
        >>> path = write_instances(Path(tempfile.mkdtemp()) / "a_instances.tif",
        ...                        np.array([[0, 1], [2, 2]]))
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
    with written_atomically(Path(path), overwrite=overwrite,
                            option="output") as temporary:
        tifffile.imwrite(temporary, labels.astype(dtype), photometric="minisblack")
    return Path(path)


def write_probabilities(path: Path, probabilities: np.ndarray, *,
                        overwrite: bool = False) -> Path:
    """Writes ``(H, W, K)`` probabilities as a float32 TIFF, one channel per class.

    Example:
        >>> import tempfile
        >>> path = write_probabilities(Path(tempfile.mkdtemp()) / "p.tif", np.ones((2, 3, 2)))
        >>> tifffile.imread(path).shape
        (2, 3, 2)
    """
    with written_atomically(Path(path), overwrite=overwrite,
                            option="output") as temporary:
        tifffile.imwrite(temporary, np.asarray(probabilities, np.float32),
                         photometric="minisblack")
    return Path(path)


def write_picture(path: Path, rgb: np.ndarray, *, overwrite: bool = False) -> Path:
    """Writes an 8-bit RGB picture (an overlay) as a PNG.

    Example:
        >>> import tempfile
        >>> path = write_picture(Path(tempfile.mkdtemp()) / "o.png", np.zeros((2, 3, 3), "uint8"))
        >>> Image.open(path).mode
        'RGB'
    """
    with written_atomically(Path(path), overwrite=overwrite,
                            option="output") as temporary:
        Image.fromarray(np.asarray(rgb, np.uint8)).save(temporary, format="PNG")
    return Path(path)
