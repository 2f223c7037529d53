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
