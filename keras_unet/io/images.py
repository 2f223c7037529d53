"""Prediction files: class masks, cell labels, probabilities and pictures, written atomically.

Every file goes through :func:`keras_unet.io.atomic.written_atomically`: written under a
temporary name in its final folder and renamed into place when complete. Class masks are
encoded (and read back) by the model's :class:`~keras_unet.class_layout.ClassLayout`: PNGs of
up to 256 semantic classes carry one palette colour per class, the cell layouts stay plain
grey (0/255, 0/127/254); TIFFs hold the values as they are. Cell labels are uint16 TIFFs
(uint32 beyond 65,535 cells), the label format napari, Fiji and CellProfiler open.

Volumes are written as ImageJ hyperstack TIFFs (axes ZYX, probabilities ZCYX) that record the
voxel size when it is known, so Fiji and napari show them with their z axis and scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from keras_unet.class_layout import ClassLayout, class_colour
from keras_unet.errors import InputError
from keras_unet.io.atomic import written_atomically
from keras_unet.io.paths import TIFF_SUFFIXES


def write_stack(path: Path, volume: np.ndarray, spacing=None) -> None:
    """Writes a ``(Z, Y, X)`` (or ``(Z, Y, X, C)``: channels as C) volume as an ImageJ
    hyperstack TIFF recording the voxel size ``(z, y, x)`` when it is given.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "v.tif"
        >>> write_stack(path, np.zeros((3, 4, 5), "uint16"), (2.0, 0.5, 0.5))
        >>> from keras_unet.io.tiff import read_volume
        >>> read_volume(path)[1]
        (2.0, 0.5, 0.5)
    """
    volume = np.asarray(volume)
    axes = "ZYX" if volume.ndim == 3 else "ZCYX"
    if volume.ndim == 4:
        volume = np.moveaxis(volume, -1, 1)
    if volume.dtype not in (np.uint8, np.uint16, np.float32):
        volume = volume.astype(np.float32 if volume.dtype.kind == "f" else np.uint16)
    options = {"metadata": {"axes": axes}}
    if spacing is not None:
        options = {"metadata": {"axes": axes, "spacing": float(spacing[0])},
                   "resolution": (1.0 / float(spacing[1]), 1.0 / float(spacing[2]))}
    tifffile.imwrite(path, volume, imagej=True, **options)


def write_class_mask(path: Path, classes: np.ndarray, layout: ClassLayout, *,
                     overwrite: bool = False, spacing=None) -> Path:
    """Writes class indices as the mask file of ``layout`` (PNG or TIFF, by the suffix); a
    volume's as a TIFF stack (:func:`write_stack`).

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
    if mask.ndim == 3 and path.suffix.lower() not in TIFF_SUFFIXES:
        raise InputError(f"{str(path)!r}: a volume's mask is written as a TIFF stack, not "
                         f"{path.suffix}.")
    with written_atomically(path, overwrite=overwrite, option="output") as temporary:
        if mask.ndim == 3:
            write_stack(temporary, mask.astype(np.uint16 if mask.dtype.itemsize > 2 else
                                               mask.dtype), spacing)
        elif path.suffix.lower() in TIFF_SUFFIXES:
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


def write_instances(path: Path, labels: np.ndarray, *, overwrite: bool = False,
                    spacing=None) -> Path:
    """Writes cell labels as a TIFF label image: uint16, or uint32 beyond 65,535 cells.

    A volume's ``(D, H, W)`` labels are a TIFF stack with its voxel size (uint32 beyond
    65,535 cells is not an ImageJ type: such stacks are plain TIFFs).

    Raises:
        ValueError: for labels that are not 0..N integers of a (H, W) image or a volume.

    Example:
        >>> import tempfile
        >>> path = write_instances(Path(tempfile.mkdtemp()) / "a_instances.tif",
        ...                        np.array([[0, 1], [2, 2]]))
        >>> tifffile.imread(path).dtype
        dtype('uint16')
    """
    labels = np.asarray(labels)
    largest = np.iinfo(np.uint32).max
    if (labels.ndim not in (2, 3) or not np.issubdtype(labels.dtype, np.integer)
            or labels.min(initial=0) < 0 or labels.max(initial=0) > largest):
        raise InputError(f"instance labels must be a (H, W) image of integers 0..{largest}, "
                         f"got shape {labels.shape} and dtype {labels.dtype}.")
    dtype = np.uint16 if labels.max(initial=0) <= np.iinfo(np.uint16).max else np.uint32
    with written_atomically(Path(path), overwrite=overwrite,
                            option="output") as temporary:
        if labels.ndim == 3 and dtype == np.uint16:
            write_stack(temporary, labels.astype(dtype), spacing)
        else:
            tifffile.imwrite(temporary, labels.astype(dtype), photometric="minisblack")
    return Path(path)


def write_probabilities(path: Path, probabilities: np.ndarray, *,
                        overwrite: bool = False, spacing=None) -> Path:
    """Writes ``(H, W, K)`` probabilities as a float32 TIFF, one channel per class (a volume's
    ``(D, H, W, K)`` as a ZCYX hyperstack).

    Example:
        >>> import tempfile
        >>> path = write_probabilities(Path(tempfile.mkdtemp()) / "p.tif", np.ones((2, 3, 2)))
        >>> tifffile.imread(path).shape
        (2, 3, 2)
    """
    probabilities = np.asarray(probabilities, np.float32)
    with written_atomically(Path(path), overwrite=overwrite,
                            option="output") as temporary:
        if probabilities.ndim == 4:
            write_stack(temporary, probabilities, spacing)
        else:
            tifffile.imwrite(temporary, probabilities, photometric="minisblack")
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
