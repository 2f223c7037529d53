"""The one writer every output goes through: a temporary name beside the final one, then a rename
that never replaces what exists unless asked.

A reader (napari, a model zoo upload, TF-Serving's file watcher) never sees half a file or a
half store; a failed or killed write leaves nothing under the final name; and a run never
replaces another run's output silently. :func:`written_atomically` (files and folders) writes
under a hidden temporary name in the final folder (``.<name>.tmp-<pid>-<random>``) and
:func:`publish` moves it into place:

* without ``overwrite``, with ``renameat2(RENAME_NOREPLACE)`` (Linux; elsewhere a hard link for
  files, a last check for folders): if the final name appeared meanwhile, the run stops with
  :class:`~keras_unet.errors.OutputExistsError` and the other run's output stays as it was;
* with ``overwrite``, a file (or a symlink) is replaced by the rename itself, never written
  through; a folder is moved aside, the new one renamed in, the old one removed.

An operating-system error while writing (a full disk, a read-only folder) becomes a
:class:`~keras_unet.errors.FaultError` naming the output. Temporary names of runs that died
(their process is gone) are removed by the next write of the same output
(:func:`remove_leftovers`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from keras_unet.errors import (FaultError, NotAFileError, NotAFolderError, OutputExistsError,
                               UserError)

RENAME_NOREPLACE = 1
"""The ``renameat2`` flag that makes a rename fail when the target exists (Linux >= 3.15)."""

AT_FDCWD = -100


@contextlib.contextmanager
def written_atomically(final: str | os.PathLike, *, overwrite: bool = False,
                       option: str = "path", folder: bool = False) -> Iterator[Path]:
    """Yields a temporary path beside ``final`` (a new folder if ``folder``), published to
    ``final`` when the block succeeds.

    Raises:
        FileExistsError: if ``final`` exists (also as a dangling symlink) and ``overwrite`` is
            false, checked before writing and again at the rename, naming ``option``.
        keras_unet.errors.FaultError: for an operating-system error while writing.

    Example:
        >>> import tempfile
        >>> final = Path(tempfile.mkdtemp()) / "model.onnx"
        >>> with written_atomically(final) as temporary:
        ...     _ = temporary.write_bytes(b"onnx")
        >>> final.read_bytes(), sorted(p.name for p in final.parent.iterdir())
        (b'onnx', ['model.onnx'])
    """
    final = Path(final)
    refuse_existing(final, overwrite=overwrite, option=option, folder=folder)
    remove_leftovers(final)
    temporary = temporary_path(final)
    try:
        with faults_named(final, option):
            if folder:
                temporary.mkdir()  # with the user's umask (mkdtemp would make it private)
            yield temporary
            publish(temporary, final, overwrite=overwrite, option=option)
    finally:
        discard(temporary)


@contextlib.contextmanager
def scratch_folder(final: str | os.PathLike, *, option: str = "path") -> Iterator[Path]:
    """Yields a new folder beside ``final`` for the pieces an output is built from (a package's
    weights before they are zipped), removed afterwards; named as the temporaries are
    (``.<name>.parts.tmp-<pid>-<random>``), so a killed run's is removed by the next, and on
    the output's disk, so a full disk is a fault that names ``final``.

    Example:
        >>> import tempfile
        >>> final = Path(tempfile.mkdtemp()) / "cells.zip"
        >>> with scratch_folder(final) as parts:
        ...     _ = (parts / "weights.onnx").write_bytes(b"onnx")
        >>> list(final.parent.iterdir())
        []
    """
    final = Path(final)
    parts = final.with_name(f"{final.name}.parts")
    remove_leftovers(parts)
    temporary = temporary_path(parts)
    try:
        with faults_named(final, option):
            temporary.parent.mkdir(parents=True, exist_ok=True)
            temporary.mkdir()
            yield temporary
    finally:
        discard(temporary)


@contextlib.contextmanager
def faults_named(final: Path, option: str = "path") -> Iterator[None]:
    """Turns an operating-system error (a full disk, a read-only folder) raised while writing
    ``final`` into a :class:`~keras_unet.errors.FaultError` that names it; user errors pass.

    Example:
        >>> with faults_named(Path("out/a.png"), "--output"):
        ...     raise OSError(28, "No space left on device")
        Traceback (most recent call last):
        ...
        keras_unet.errors.FaultError: --output 'out/a.png' could not be written: No space left ...
    """
    try:
        yield
    except OSError as error:
        if isinstance(error, UserError):
            raise
        reason = os.strerror(error.errno) if error.errno else (error.strerror or error)
        raise FaultError(f"{option} {str(final)!r} could not be written: {reason}.") from error


def temporary_path(final: Path) -> Path:
    """A hidden name beside ``final`` that says whose it is, ``.<name>.tmp-<pid>-<random>``,
    ending in the final suffixes (Keras, Pillow and tifffile choose the format by them; Keras
    wants ``.weights.h5`` whole).

    Example:
        >>> name = temporary_path(Path("out/a.png")).name
        >>> name.startswith(f".a.png.tmp-{os.getpid()}-"), name.endswith(".png")
        (True, True)
        >>> temporary_path(Path("backup/latest.weights.h5")).name.endswith(".weights.h5")
        True
    """
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                           f"{''.join(final.suffixes[-2:])}")


def publish(temporary: Path, final: Path, *, overwrite: bool = False,
            option: str = "path") -> None:
    """Moves a complete ``temporary`` file or folder to ``final`` (see the module docstring).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "new").write_text("mine"); _ = (folder / "a").write_text("theirs")
        >>> publish(folder / "new", folder / "a")
        Traceback (most recent call last):
        ...
        keras_unet.errors.OutputExistsError: path '.../a' appeared while this run was writing ...
        >>> (folder / "a").read_text()
        'theirs'
    """
    if not overwrite:
        try:
            _rename_no_replace(temporary, final)
        except FileExistsError:
            raise OutputExistsError(f"{option} {str(final)!r} appeared while this run was "
                                    "writing it; it was left as it is (pass --overwrite to "
                                    "replace it).") from None
        return
    if final.is_dir() and not final.is_symlink():
        aside = final.with_name(f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.rename(final, aside)
        os.rename(temporary, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(temporary, final)  # replaces a file or a symlink itself, never its target


def discard(temporary: Path) -> None:
    """Removes a temporary file or folder, if it is still there.

    Example:
        >>> discard(Path("no-such-temporary"))
    """
    if temporary.is_dir() and not temporary.is_symlink():
        shutil.rmtree(temporary, ignore_errors=True)
    elif os.path.lexists(temporary):  # a read-only folder refuses to unlink even what is not there
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def remove_leftovers(final: Path) -> list[Path]:
    """Removes the temporary files and folders of ``final`` whose writing process is gone.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> (folder / ".a.png.tmp-999999999-0000").mkdir()  # a killed run's, no such process
        >>> [p.name for p in remove_leftovers(folder / "a.png")], list(folder.iterdir())
        (['.a.png.tmp-999999999-0000'], [])
    """
    removed = []
    if not final.parent.is_dir():
        return removed
    for leftover in final.parent.glob(f".{_escaped(final.name)}.*-*-*"):
        kind, _, owner = leftover.name[len(final.name) + 2:].partition("-")
        pid = owner.split("-", 1)[0]
        if kind in ("tmp", "old") and pid.isdigit() and not _alive(int(pid)):
            discard(leftover)
            removed.append(leftover)
    return removed


def refuse_existing(final: Path, *, overwrite: bool = False, option: str = "path",
                    folder: bool = False) -> None:
    """Refuses an output name that is taken (a dangling symlink too) unless ``overwrite``, and
    one of the wrong kind (a folder where a file goes, or the reverse) even then.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> refuse_existing(folder, option="--out")
        Traceback (most recent call last):
        ...
        keras_unet.errors.NotAFileError: --out '...' is a folder; expected a file path.
    """
    final = Path(final)
    if final.is_dir() and not final.is_symlink() and not folder:
        raise NotAFileError(f"{option} {str(final)!r} is a folder; expected a file path.")
    if folder and final.exists() and not final.is_dir():
        raise NotAFolderError(f"{option} {str(final)!r} is a file; expected a folder.")
    if os.path.lexists(final) and not overwrite:
        how = "--overwrite" if option.startswith("--") else "--overwrite (overwrite=True)"
        raise OutputExistsError(f"{option} {str(final)!r} already exists; pass {how} to replace "
                                "it.")


def _rename_no_replace(source: Path, target: Path) -> None:
    """``rename`` that fails with FileExistsError when ``target`` exists."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is not None:
        if renameat2(AT_FDCWD, os.fsencode(source), AT_FDCWD, os.fsencode(target),
                     RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise OutputExistsError(code, os.strerror(code), str(target))
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # the rename itself failed
            raise OSError(code, os.strerror(code), str(target))
    if source.is_dir():  # no atomic no-replace rename here: the last check before it
        if os.path.lexists(target):
            raise OutputExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
        os.rename(source, target)
    else:
        os.link(source, target)  # fails if the target exists
        source.unlink()


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _escaped(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
