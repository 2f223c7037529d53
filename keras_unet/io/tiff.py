"""Reading TIFFs without loading them: memory-mapped where the file allows it, and the size a
header claims checked before anything is allocated.

Used both to read training data and to stream large images through prediction, so it lives
apart from either (reading PNG training data must not load the inference engine). A TIFF's
header can claim any size: one whose uncompressed pixels would need more bytes than the file
holds is refused, and one that must be decoded into memory (compressed, or not mappable) is
refused above :func:`max_image_pixels`; uncompressed TIFFs of any size stay memory-mapped and
stream through prediction.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from keras_unet.errors import InputError, InputNotFoundError

MAX_IMAGE_PIXELS = 2**28
"""Default largest image (height * width) read into memory: 268 Mpx (16384 x 16384); set
``UNET_MAX_IMAGE_PIXELS`` to change it. Memory-mapped TIFFs are not bound by it."""


def max_image_pixels() -> int:
    """The largest image read into memory: ``UNET_MAX_IMAGE_PIXELS``, else the default.

    Example:
        >>> max_image_pixels() == int(os.environ.get("UNET_MAX_IMAGE_PIXELS", MAX_IMAGE_PIXELS))
        True
    """
    given = os.environ.get("UNET_MAX_IMAGE_PIXELS", "")
    if not given:
        return MAX_IMAGE_PIXELS
    if not given.isdigit() or int(given) < 1:
        raise InputError(f"UNET_MAX_IMAGE_PIXELS must be a positive integer, got {given!r}.")
    return int(given)


def check_pixels(path: Path, height: int, width: int) -> None:
    """Refuses an image to be read into memory whose header claims more than
    :func:`max_image_pixels`.

    Example:
        >>> check_pixels(Path("huge.png"), 100000, 100000)
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: 'huge.png' claims 100000 x 100000 pixels, more than the ...
    """
    limit = max_image_pixels()
    if height * width > limit:
        raise InputError(f"{str(path)!r} claims {height} x {width} pixels, more than the "
                         f"{limit} that are read into memory (UNET_MAX_IMAGE_PIXELS); an "
                         "uncompressed TIFF of that size is streamed.")


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
            mappable = _check_claims(path, tif)
        image = tifffile.memmap(path, mode="r") if mappable else tifffile.imread(path)
    except (tifffile.TiffFileError, OSError, IndexError, ValueError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"{str(path)!r} is not a readable TIFF ({error}).") from None
    if axes in ("YX", "YXS", "YXC"):
        return image
    if axes in ("CYX", "SYX") and image.ndim == 3:
        return np.moveaxis(image, 0, -1)
    raise InputError(
        f"{str(path)!r} has axes {axes!r} with shape {image.shape}; expected one 2D image "
        "(YX) with optional channels (YXS, CYX)."
    )


def _check_claims(path: Path, tif: tifffile.TiffFile, whole: bool = False) -> bool:
    """Refuses what the file cannot hold or memory cannot take (``whole``: all of it is read
    into memory, whether it maps or not); returns whether it maps."""
    series = tif.series[0]
    pages = list(series.pages)
    claimed = int(np.prod(series.shape)) * np.dtype(series.dtype).itemsize
    stored = sum(sum(page.databytecounts) for page in pages)
    ends = [offset + count for page in pages
            for offset, count in zip(page.dataoffsets, page.databytecounts)]
    size = path.stat().st_size
    if max(ends, default=0) > size:
        raise InputError(f"{str(path)!r} is truncated: its header places pixel data up to byte "
                         f"{max(ends)} of a {size}-byte file.")
    uncompressed = all(int(page.compression) == 1 for page in pages)
    if uncompressed and stored < claimed:
        raise InputError(f"{str(path)!r} claims {' x '.join(map(str, series.shape))} pixels "
                         f"({claimed} bytes) but holds {stored} bytes of them.")
    mappable = uncompressed and all(page.is_memmappable for page in pages)
    if (whole or not mappable) and "Y" in series.axes and "X" in series.axes:
        width = int(series.shape[series.axes.index("X")])
        channels = np.prod([size for axis, size in zip(series.axes, series.shape)
                            if axis in "CS"], dtype=np.int64)
        check_pixels(path, int(np.prod(series.shape)) // (width * int(channels)), width)
    return mappable


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
            _check_claims(path, tif, whole=True)
            axes, data = series.axes, series.asarray()
            spacing = _tiff_spacing(tif)
    except (tifffile.TiffFileError, OSError, IndexError, ValueError) as error:
        if isinstance(error, InputError):
            raise
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
