"""Where each export goes, checked before anything is loaded or written.

A TF-Serving base folder holds numbered versions (:func:`existing_versions`); a new version
never replaces one (:func:`check_export_target`). A bioimage.io package is the ``.zip`` named,
or a zip in a folder that holds no other package unless asked (:func:`check_package_target`).
These checks need no TensorFlow, so ``unet export`` makes them before TensorFlow starts.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from keras_unet.errors import InputError, NotAFolderError, OutputExistsError
from keras_unet.io.atomic import refuse_existing

DEFAULT_MAX_IMAGE_PIXELS = 64 * 2**20
"""Largest image (height * width) a request may send: 64 Mpx, i.e. 8192 x 8192; larger ones get
InvalidArgument, not an out-of-memory crash (the memory it takes: benchmarks/README.md)."""

DEFAULT_PACKAGE_NAME = "keras_unet U-Net"
"""A bioimage.io package's name unless given; its zip is ``keras_unet_U-Net.zip``."""


def existing_versions(export_base: Path) -> list[int]:
    """The version numbers present under ``export_base`` (folders named by an integer), sorted.

    Example:
        >>> import tempfile
        >>> base = Path(tempfile.mkdtemp())
        >>> for name in ("1", "7", ".tmp-8-x", "notes"):
        ...     (base / name).mkdir()
        >>> existing_versions(base)
        [1, 7]
    """
    if not Path(export_base).is_dir():
        return []
    return sorted(int(path.name) for path in Path(export_base).iterdir()
                  if path.is_dir() and path.name.isdigit())


def check_export_target(export_base: Path, version: int | None = None,
                        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
    """Refuses an export base that is a file or a SavedModel, an existing or invalid version,
    a bad pixel limit.

    Called first by :func:`export_for_serving` (and by ``unet export`` before loading a model).

    Example:
        >>> import tempfile
        >>> base = Path(tempfile.mkdtemp())
        >>> (base / "1").mkdir()
        >>> check_export_target(base, 1)
        Traceback (most recent call last):
        ...
        keras_unet.errors.OutputExistsError: version 1 already exists in ...; versions are ...
    """  # noqa: E501
    export_base = Path(export_base)
    if export_base.exists() and not export_base.is_dir():
        raise NotAFolderError(f"export base {str(export_base)!r} is a file; TF-Serving needs a "
                              "folder of numbered versions.")
    savedmodel = next((folder for folder in (export_base, *export_base.parents)
                       if (folder / "saved_model.pb").is_file()), None)
    if savedmodel is not None:  # a version folder typed for its base: never nest a version in it
        where = "is" if savedmodel == export_base else "is inside"
        base = savedmodel.parent
        instead = (f"pass the folder of numbered versions TF-Serving watches ({str(base)!r} "
                   f"writes version {max(existing_versions(base), default=0) + 1} there)"
                   if savedmodel.name.isdigit() else
                   "pass a folder for numbered versions, as TF-Serving watches")
        raise OutputExistsError(f"export base {str(export_base)!r} {where} the SavedModel "
                                f"{str(savedmodel)!r}; {instead}.")
    if version is not None:
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InputError(f"version must be a positive integer, got {version!r}.")
        if (export_base / str(version)).exists():
            raise OutputExistsError(
                f"version {version} already exists in {str(export_base)!r}; versions are never "
                f"overwritten (TF-Serving may be serving it). Omit the version to write "
                f"{max(existing_versions(export_base), default=0) + 1}.")
    if (not isinstance(max_image_pixels, int) or isinstance(max_image_pixels, bool)
            or max_image_pixels < 1):
        raise InputError(f"max_image_pixels must be a positive integer, got {max_image_pixels!r}.")


def check_package_target(out: Path, name: str, *, overwrite: bool = False) -> Path:
    """The package's zip: ``out`` itself if it names a ``.zip`` (and is not a folder), else
    ``out/<name>.zip``; refuses a taken zip name, or a folder that already holds a package.

    A package is an ``rdf.yaml`` or ``bioimageio.yaml``, or a zip holding one; with
    ``overwrite`` only the package of the same name is replaced (others are left alone).

    Raises:
        NotADirectoryError: if ``out`` is a file.
        FileExistsError: if ``out`` holds a package and ``overwrite`` is false.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp())
        >>> check_package_target(out, "my U-Net").name
        'my_U-Net.zip'
        >>> check_package_target(out / "cells.zip", "my U-Net").name  # a zip of your naming
        'cells.zip'
        >>> _ = (out / "rdf.yaml").write_text("type: model")
        >>> check_package_target(out, "my U-Net")
        Traceback (most recent call last):
        ...
        keras_unet.errors.OutputExistsError: --out '...' already holds a bioimage.io package ...
    """  # noqa: E501
    out = Path(out)
    if out.suffix.lower() == ".zip" and not out.is_dir():
        if out.parent.exists() and not out.parent.is_dir():
            raise NotAFolderError(f"--out {str(out)!r}: {str(out.parent)!r} is a file, not a "
                                  "folder.")
        refuse_existing(out, overwrite=overwrite, option="--out")
        return out
    if out.exists() and not out.is_dir():
        raise NotAFolderError(f"--out {str(out)!r} is a file; bioimage.io packages go in a "
                              "folder.")
    target = out / (name.replace(" ", "_") + ".zip")
    found = _packages_in(out)
    if found and not overwrite:
        raise OutputExistsError(f"--out {str(out)!r} already holds a bioimage.io package "
                                f"({', '.join(found)}); pass --overwrite to replace {target.name}.")
    return target


def _packages_in(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    found = [p.name for p in folder.iterdir() if p.name in ("rdf.yaml", "bioimageio.yaml")]
    for path in sorted(folder.glob("*.zip")):
        try:
            with zipfile.ZipFile(path) as archive:
                if {"rdf.yaml", "bioimageio.yaml"} & set(archive.namelist()):
                    found.append(path.name)
        except zipfile.BadZipFile:
            continue
    return found
