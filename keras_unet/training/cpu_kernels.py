"""What the CPU offers, and which of TensorFlow's CPU kernels ``unet train`` trains with.

TensorFlow's x86 build has two sets of kernels: oneDNN's, which it turns on by itself only on
CPUs with :data:`ONEDNN_DEFAULT_FLAGS` (AVX-512 VNNI/BF16, AVX-VNNI, AMX), and Eigen's, which
it runs everywhere else (most AVX2 CPUs). There, with oneDNN capped at AVX2, the narrow
networks of the CPU defaults train about twice as fast on oneDNN (the 3D U-Net six times),
while Eigen stays faster for 2D forward passes (prediction) and networks of 64 filters
(benchmarks/README.md, "oneDNN for training on AVX2 CPUs"). So ``unet train`` turns oneDNN on
for networks of up to :data:`NARROW_FILTERS` filters trained in float32 on such CPUs. The
switch is the environment variable ``TF_ENABLE_ONEDNN_OPTS``, read once when TensorFlow loads:
a value the user set is kept, and in a process where TensorFlow already runs nothing is
changed. Reads only ``/proc/cpuinfo``, so it runs before TensorFlow is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

ONEDNN_DEFAULT_FLAGS = frozenset({"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile",
                                  "amx_int8", "amx_bf16"})
"""CPU flags with which TensorFlow turns oneDNN on by itself (its rule for Linux x86)."""

NARROW_FILTERS = 32
"""Widest network (filters of the first level) trained with oneDNN where TensorFlow would not
use it: with the AVX2 machine's code paths, oneDNN trained 16 filters 1.9x as fast as Eigen,
32 filters 1.22x, 64 filters 0.93x (the paper's network 0.71x)."""

FLOAT32_PRECISIONS = ("off", "auto")
"""``mixed_precision`` settings that train in float32 where oneDNN is turned on (``auto``: such a
CPU has no native bfloat16). oneDNN's AVX2 kernels have no bfloat16 or float16 convolutions
(it refuses them: "could not create a primitive descriptor"); Eigen emulates them."""

ONEDNN_SWITCH = "TF_ENABLE_ONEDNN_OPTS"
"""TensorFlow's environment variable: 1 turns oneDNN on, 0 off, at import."""


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``) from ``/proc/cpuinfo``.

    Empty where that file does not exist (macOS, Windows).

    Args:
        cpuinfo: the text of ``/proc/cpuinfo`` (default: read it).

    Example:
        >>> sorted(cpu_flags("processor\\t: 0\\nflags\\t\\t: fpu avx2 fma\\n"))
        ['avx2', 'fma', 'fpu']
    """
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        if not path.is_file():
            return frozenset()
        cpuinfo = path.read_text(errors="replace")
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return frozenset(flags)


def onednn_helps_training(filters: int, mixed_precision: str = "auto",
                          flags: frozenset[str] | None = None) -> bool:
    """Whether oneDNN should train a network of ``filters`` where TensorFlow would not use it.

    True on an x86 CPU with AVX2 but none of :data:`ONEDNN_DEFAULT_FLAGS`, for at most
    :data:`NARROW_FILTERS` filters trained in float32 (:data:`FLOAT32_PRECISIONS`).

    Example:
        >>> onednn_helps_training(16, "auto", frozenset({"avx2", "fma"}))  # an AVX2 EPYC
        True
        >>> onednn_helps_training(16, "auto", frozenset({"avx2", "avx512_vnni"}))  # on already
        False
        >>> onednn_helps_training(64, "auto", frozenset({"avx2", "fma"}))  # Eigen is faster
        False
        >>> onednn_helps_training(16, "bfloat16", frozenset({"avx2", "fma"}))  # Eigen emulates
        False
    """
    flags = cpu_flags() if flags is None else flags
    return ("avx2" in flags and not flags & ONEDNN_DEFAULT_FLAGS and filters <= NARROW_FILTERS
            and mixed_precision in FLOAT32_PRECISIONS)


def turn_on_onednn_for_training(filters: int, mixed_precision: str = "auto", *,
                                flags: frozenset[str] | None = None,
                                environ: MutableMapping[str, str] | None = None) -> bool:
    """Sets ``TF_ENABLE_ONEDNN_OPTS=1`` where :func:`onednn_helps_training`; whether it did.

    Nothing changes where the variable is set already (the user's choice) or TensorFlow was
    imported (it has read the variable). Call it before TensorFlow starts, as ``unet train``
    does.

    Example:
        >>> turn_on_onednn_for_training(16, flags=frozenset({"avx2"}),
        ...                             environ={"TF_ENABLE_ONEDNN_OPTS": "0"})  # kept
        False
    """
    environ = os.environ if environ is None else environ
    if ONEDNN_SWITCH in environ or "tensorflow" in sys.modules:
        return False
    if not onednn_helps_training(filters, mixed_precision, flags):
        return False
    environ[ONEDNN_SWITCH] = "1"
    return True
