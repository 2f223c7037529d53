"""Which paths a command may use: inputs that are there, outputs that never touch an input.

An output that is an input, lies inside one or contains one could replace or delete what the
user gave (``--input outer.zarr/img --output outer.zarr --overwrite`` would remove the image),
so every command refuses it before any work, symlinks resolved.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from keras_unet.errors import InputError, InputNotFoundError

TIFF_SUFFIXES = (".tif", ".tiff")
MASK_SUFFIXES = (".png", *TIFF_SUFFIXES)
"""What a mask file may be: lossless formats only, since its values are labels."""
IMAGE_SUFFIXES = (*MASK_SUFFIXES, ".jpg", ".jpeg", ".bmp")
"""What an image file may be (what Pillow and tifffile read), for training and prediction."""


def existing_input(path: str | os.PathLike, option: str) -> Path:
    """``path`` if it exists; else one line saying why not (missing, a broken or looping link).

    Example:
        >>> existing_input("no-such-image.png", "--input")
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputNotFoundError: --input 'no-such-image.png' does not exist.
    """
    path = Path(path)
    if path.exists():
        return path
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            raise InputError(f"{option} {str(path)!r} is a symbolic link that points to "
                             "itself (a loop).") from None
        except OSError:
            pass
        raise InputNotFoundError(f"{option} {str(path)!r} is a symbolic link to "
                                 f"{os.readlink(path)!r}, which does not exist.")
    raise InputNotFoundError(f"{option} {str(path)!r} does not exist.")


def refuse_overlap(output: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None],
                   option: str = "--output") -> None:
    """Refuses an output that is, lies inside or contains any of ``inputs`` (``{option: path}``),
    or that lies under a file (it could never be written).

    Example:
        >>> refuse_overlap("outer.zarr", {"--input": "outer.zarr/img"})
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: --output 'outer.zarr' contains --input 'outer.zarr/img'; ...
    """
    for folder in Path(output).parents:  # the nearest that exists must be a folder
        if os.path.lexists(folder):
            if not folder.is_dir():
                raise InputError(f"{option} {str(output)!r} lies under {str(folder)!r}, which is "
                                 "a file, not a folder: choose another path.")
            break
    target = Path(os.path.realpath(output))
    for name, given in inputs.items():
        if given is None:
            continue
        source = Path(os.path.realpath(given))
        relation = ("is" if target == source else "lies inside" if source in target.parents
                    else "contains" if target in source.parents else None)
        if relation:
            raise InputError(f"{option} {str(output)!r} {relation} {name} {str(given)!r}; "
                             "an output must never touch an input: choose another path.")
