"""Reading TIFFs without loading them: memory-mapped where the file allows it.

Used both to read training data and to stream large images through prediction, so it lives
apart from either (reading PNG training data must not load the inference engine).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from keras_unet.errors import InputError, InputNotFoundError


def read_tiff(path: str | os.PathLike) -> np.ndarray:
    """A TIFF's first image as (H, W) or (H, W, C), memory-mapped when the file allows it.

    Channel-first (planar) files are returned as a channels-last view.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not a readable TIFF or has more than one image plane per channel.

    Example:
        >>> import tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "a.tif")
        >>> tifffile.imwrite(path, np.zeros((4, 6), "uint16"))
        >>> read_tiff(path).shape
        (4, 6)
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"input TIFF {str(path)!r} does not exist.")
    try:
        with tifffile.TiffFile(path) as tif:
            axes = tif.series[0].axes
        try:
            image = tifffile.memmap(path, mode="r")
        except ValueError:  # compressed or tiled: not mappable
            image = tifffile.imread(path)
    except (tifffile.TiffFileError, OSError, IndexError) as error:
        raise InputError(f"{str(path)!r} is not a readable TIFF ({error}).") from None
    if axes in ("YX", "YXS", "YXC"):
        return image
    if axes in ("CYX", "SYX") and image.ndim == 3:
        return np.moveaxis(image, 0, -1)
    raise InputError(
        f"{str(path)!r} has axes {axes!r} with shape {image.shape}; expected one 2D image "
        "(YX) with optional channels (YXS, CYX)."
    )


STACK_AXES = "ZQIT"
"""TIFF axes (tifffile's names) that number the planes of a stack."""


def is_stack(path: str | os.PathLike) -> bool:
    """Whether a TIFF holds a stack of planes (a volume), not one image with channels.

    Example:
        >>> import tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "v.tif")
        >>> tifffile.imwrite(path, np.zeros((3, 4, 5), "uint8"), photometric="minisblack")
        >>> is_stack(path)
        True
    """
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, series.shape
    except (tifffile.TiffFileError, OSError, IndexError):
        return False
    return any(axis in STACK_AXES and size > 1 for axis, size in zip(axes, shape))


def read_volume(path: str | os.PathLike) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """A TIFF stack as ``(Z, Y, X)`` or ``(Z, Y, X, C)`` and its voxel size ``(z, y, x)``.

    The planes are the file's one axis of Z, pages (Q, I) or time of more than one; channels
    (C, S) go last. The voxel size comes from ImageJ's metadata (``spacing`` for z, the
    resolution tags for y and x) or OME-TIFF's ``PhysicalSizeZ/Y/X``; ``None`` when the file
    does not give all three.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not a readable TIFF or not one stack of planes, naming it.

    Example:
        >>> import tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "v.tif")
        >>> tifffile.imwrite(path, np.zeros((3, 4, 5), "uint8"), imagej=True,
        ...                  resolution=(2.0, 2.0), metadata={"spacing": 1.5, "axes": "ZYX"})
        >>> volume, spacing = read_volume(path)
        >>> volume.shape, spacing
        ((3, 4, 5), (1.5, 0.5, 0.5))
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"input TIFF {str(path)!r} does not exist.")
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, data = series.axes, series.asarray()
            spacing = _tiff_spacing(tif)
    except (tifffile.TiffFileError, OSError, IndexError, ValueError) as error:
        raise InputError(f"{str(path)!r} is not a readable TIFF ({error}).") from None
    planes = [i for i, axis in enumerate(axes) if axis in STACK_AXES and data.shape[i] > 1]
    single = [i for i, axis in enumerate(axes) if axis in STACK_AXES and data.shape[i] == 1]
    channels = [i for i, axis in enumerate(axes) if axis in "CS"]
    if (len(planes) > 1 or len(channels) > 1 or "Y" not in axes or "X" not in axes
            or len(axes) != len(planes) + len(single) + len(channels) + 2):
        raise InputError(f"{str(path)!r} has axes {axes!r} with shape {data.shape}; expected one "
                         "stack of planes (ZYX), with optional channels (ZCYX, ZYXS).")
    data = np.squeeze(data, axis=tuple(single)) if single else data
    axes = "".join(axis for i, axis in enumerate(axes) if i not in single)
    order = [axes.index(a) for a in axes if a in STACK_AXES] + [axes.index("Y"), axes.index("X")]
    order += [axes.index(a) for a in axes if a in "CS"]
    data = np.transpose(data, order)
    if not planes:
        raise InputError(f"{str(path)!r} has axes {axes!r} with shape {data.shape}: one plane, "
                         "not a stack (a 3-plane stack may have been saved as RGB: write it "
                         "with photometric='minisblack').")
    return data, spacing


def _tiff_spacing(tif: tifffile.TiffFile) -> tuple[float, ...] | None:
    """The voxel size ``(z, y, x)`` an ImageJ or OME TIFF records, else None."""
    import re

    if tif.ome_metadata:
        sizes = {axis: re.search(rf'PhysicalSize{axis}="([0-9.eE+-]+)"', tif.ome_metadata)
                 for axis in "ZYX"}
        if all(sizes.values()):
            values = tuple(float(sizes[axis].group(1)) for axis in "ZYX")
            return values if all(v > 0 for v in values) else None
    metadata = tif.imagej_metadata or {}
    if "spacing" in metadata:
        page = tif.pages[0]
        resolution = []
        for tag in ("YResolution", "XResolution"):
            value = page.tags.get(tag)
            numerator, denominator = value.value if value is not None else (1, 1)
            resolution.append(denominator / numerator if numerator else 0.0)
        values = (float(metadata["spacing"]), *resolution)
        return values if all(v > 0 for v in values) else None
    return None
