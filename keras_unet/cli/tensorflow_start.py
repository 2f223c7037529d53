"""Starting TensorFlow for a ``unet`` command without its start-up log lines on stderr.

On a machine without a GPU, TensorFlow writes "Could not find cuda drivers", ``cuInit`` and
absl lines from C++ while it loads and first lists its devices, whatever
``TF_CPP_MIN_LOG_LEVEL`` says (tensorflow/tensorflow#100442). :func:`start_tensorflow` holds
back those native log lines during start-up and passes on everything else written to stderr:
all of them when the user has not set ``TF_CPP_MIN_LOG_LEVEL`` (it is then set to 2 for the
rest of the run), or those below the level the user set. ``--verbose`` or ``UNET_DEBUG=1``
shows them all.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable

SEVERITIES = {"I": 0, "W": 1, "E": 2, "F": 3}
"""TensorFlow's C++ log severities, numbered as ``TF_CPP_MIN_LOG_LEVEL`` counts them."""

NATIVE_LOG_LINE = re.compile(
    r"^(?:(?P<absl>[IWEF])\d{4} |\d{4}-\d\d-\d\d [\d:.]+: (?P<dated>[IWEF]) "
    r"|(?P<preamble>WARNING: All log messages before absl::)"
    r"|(?P<continued>To enable the following instructions:))"
)
"""An absl/TensorFlow C++ log line (``I0000 00:00:...`` or dated), or its known companions."""


def native_severity(line: str) -> int | None:
    """The severity of a TensorFlow C++ log line, or None for any other line.

    Example:
        >>> native_severity("E0000 00:00:1.5 1 cuda_platform.cc:52] failed call to cuInit")
        2
        >>> native_severity("unet train: starting run") is None
        True
    """
    match = NATIVE_LOG_LINE.match(line)
    if match is None:
        return None
    letter = match["absl"] or match["dated"]
    return SEVERITIES[letter] if letter else (1 if match["preamble"] else 0)


def start_tensorflow(verbose: bool, first: Callable[[], object] | None = None) -> None:
    """Imports TensorFlow, runs ``first`` (what must configure the runtime before anything else
    does, such as a multi-worker strategy) and lists the devices, holding back the start-up log
    lines unless verbose.

    Example:
        >>> start_tensorflow(verbose=False)
        >>> "tensorflow" in sys.modules
        True
    """
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    if verbose:
        _import_tensorflow(first)
        return
    hide_below = len(SEVERITIES) if level is None else int(level) if level.isdigit() else 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if hide_below == 0:
        _import_tensorflow(first)
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            _import_tensorflow(first)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            severities = [native_severity(line) for line in lines]
            sys.stderr.write("".join(line for line, severity in zip(lines, severities)
                                     if severity is None or severity >= hide_below))


def _import_tensorflow(first: Callable[[], object] | None) -> None:
    import tensorflow as tf

    if first is not None:
        first()
    tf.config.list_logical_devices()
