"""The exceptions that mean "the input is wrong" or "the world failed", raised where it is seen.

``unet`` prints a :class:`UserError` as one line naming the file or argument and exits with
code 2, and a :class:`FaultError` (a full disk, a read-only folder, a corrupt file) as one line
with exit code 1; anything else is a bug and keeps its traceback. Each user error is also the
built-in exception it refines (``ValueError``, ``FileNotFoundError``, ``FileExistsError``,
``NotADirectoryError``, ``IsADirectoryError``, ``ConnectionError``), so code that catches those
keeps working.

Example:
    >>> try:
    ...     raise InputError("tile_size must be a positive integer, got -1.")
    ... except ValueError as error:
    ...     isinstance(error, UserError)
    True
"""

import os


class UserError(Exception):
    """A mistake in what the user gave (a file, an option, a value), fixable by the user."""


class InputError(UserError, ValueError):
    """A value, option or file content that is not what was expected."""


class InputNotFoundError(UserError, FileNotFoundError):
    """A named input file or folder that does not exist."""


class OutputExistsError(UserError, FileExistsError):
    """An output that already exists and would be overwritten."""


class NotAFolderError(UserError, NotADirectoryError):
    """A path given as a folder that is not one."""


class NotAFileError(UserError, IsADirectoryError):
    """A path given as a file that is a folder."""


class SchedulerUnreachableError(UserError, ConnectionError):
    """A dask scheduler address that did not answer: a connection the user can fix.

    Example:
        >>> isinstance(SchedulerUnreachableError("tcp://x:1"), ConnectionError)
        True
    """


class FaultError(Exception):
    """Something outside the input and the code failed: a full disk, a read-only folder, a
    corrupt or truncated file. ``unet`` prints it as one line, exit code 1.

    Example:
        >>> isinstance(FaultError("out/a.png could not be written"), UserError)
        False
    """


class DamagedFileError(FaultError):
    """An input that starts as its format but cannot be read: a truncated copy or download, a
    corrupt part. A fault of the file, not a mistake: exit code 1; a folder of images to predict
    skips it and goes on.

    Example:
        >>> isinstance(DamagedFileError("'a.png' is damaged"), FaultError)
        True
    """


def os_error_line(error: OSError) -> str | None:
    """How an operating-system error on a named file is said, by ``unet`` and the napari plugin
    alike: ``'<file>': <reason>.``; None for one that names no file (a bug's: keep its traceback).

    Example:
        >>> os_error_line(PermissionError(13, "Permission denied", "out/a.png"))
        "'out/a.png': Permission denied."
    """
    if error.errno is None or error.filename is None:
        return None
    return f"{error.filename!r}: {os.strerror(error.errno)}."
