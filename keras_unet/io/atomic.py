"""Writes a file under a temporary name beside its final path and renames it when complete.

A reader (napari, a model zoo upload, TF-Serving's file watcher) never sees half a file, and a
failed write leaves nothing behind: the rule :mod:`keras_unet.serving.export` follows for
SavedModel folders, for single files (checkpoints, masks, ONNX models, bioimage.io zips).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from keras_unet.errors import NotAFileError, OutputExistsError


@contextlib.contextmanager
def written_atomically(final: Path, *, overwrite: bool = False,
                       option: str = "path") -> Iterator[Path]:
    """Yields a temporary path beside ``final``; renames it to ``final`` if the block succeeds.

    Raises:
        FileExistsError: if ``final`` exists and ``overwrite`` is false (checked before and
            after writing), naming ``option``.

    Example:
        >>> import tempfile
        >>> final = Path(tempfile.mkdtemp()) / "model.onnx"
        >>> with written_atomically(final) as temporary:
        ...     _ = temporary.write_bytes(b"onnx")
        >>> final.read_bytes(), sorted(p.name for p in final.parent.iterdir())
        (b'onnx', ['model.onnx'])
    """
    final = Path(final)
    refuse_existing(final, overwrite=overwrite, option=option)
    temporary = final.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{final.name}")
    try:
        yield temporary
        refuse_existing(final, overwrite=overwrite, option=option)
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)


def refuse_existing(final: Path, *, overwrite: bool = False, option: str = "path") -> None:
    """Refuses a path that is a folder, or an existing file unless ``overwrite``.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> refuse_existing(folder, option="--out")
        Traceback (most recent call last):
        ...
        keras_unet.errors.NotAFileError: --out '...' is a folder; expected a file path.
    """
    final = Path(final)
    if final.is_dir():
        raise NotAFileError(f"{option} {str(final)!r} is a folder; expected a file path.")
    if final.exists() and not overwrite:
        raise OutputExistsError(f"{option} {str(final)!r} already exists; pass --overwrite "
                                "(overwrite=True) to replace it.")
