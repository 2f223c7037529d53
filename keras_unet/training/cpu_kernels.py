"""What the CPU offers, and which of TensorFlow's CPU kernels ``unet train`` trains with.

TensorFlow's x86 build has two sets of kernels: oneDNN's, which it turns on by itself only on
CPUs with :data:`ONEDNN_DEFAULT_FLAGS` (AVX-512 VNNI/BF16, AVX-VNNI, AMX), and Eigen's, which
it runs everywhere else (most AVX2 CPUs). There, with oneDNN capped at AVX2, the narrow
networks of the CPU defaults train about twice as fast on oneDNN (the 3D U-Net six times),
while Eigen stays faster for 2D forward passes (prediction) and networks of 64 filters
(benchmarks/README.md, "oneDNN for training on AVX2 CPUs"). So ``unet train`` turns oneDNN on
for networks of up to :data:`NARROW_FILTERS` filters trained in float32 on such CPUs. The
other way round, oneDNN has no bfloat16 convolutions without AVX-512 (:data:`AVX512_CORE`), as
on laptops with AVX-VNNI, where TensorFlow turns it on: ``unet train --mixed-precision
bfloat16`` turns it off there, for Eigen's emulated bfloat16. The switch is the environment
variable ``TF_ENABLE_ONEDNN_OPTS``, read once when TensorFlow loads: a value the user set is
kept, and in a process where TensorFlow already runs nothing is changed. Reads only
``/proc/cpuinfo``, so it runs before TensorFlow is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from keras_unet.errors import InputError

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

AVX512_CORE = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})
"""oneDNN's ``avx512_core``: with it (or AMX) oneDNN computes bfloat16 convolutions, natively
with ``avx512_bf16``, else emulated; with AVX2 or AVX-VNNI alone it refuses them ("could not
create a primitive descriptor"), seen with oneDNN capped at ``AVX2_VNNI``."""

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


def tensorflow_uses_onednn(flags: frozenset[str] | None = None,
                           environ: Mapping[str, str] | None = None) -> bool:
    """Whether TensorFlow runs oneDNN's kernels: ``TF_ENABLE_ONEDNN_OPTS`` where it is set,
    else TensorFlow's own rule (:data:`ONEDNN_DEFAULT_FLAGS`).

    Example:
        >>> tensorflow_uses_onednn(frozenset({"avx2", "avx_vnni"}), environ={})
        True
        >>> tensorflow_uses_onednn(frozenset({"avx2"}), environ={"TF_ENABLE_ONEDNN_OPTS": "1"})
        True
    """
    environ = os.environ if environ is None else environ
    if ONEDNN_SWITCH in environ:
        return environ[ONEDNN_SWITCH].strip().lower() in ("1", "true")
    flags = cpu_flags() if flags is None else flags
    return bool(flags & ONEDNN_DEFAULT_FLAGS)


def bfloat16_convolutions_fail(flags: frozenset[str] | None = None,
                               environ: Mapping[str, str] | None = None) -> bool:
    """Whether a bfloat16 convolution on this CPU would fail: TensorFlow runs oneDNN
    (:func:`tensorflow_uses_onednn`) without :data:`AVX512_CORE` or AMX.

    Example:
        >>> bfloat16_convolutions_fail(frozenset({"avx2", "avx_vnni"}), environ={})  # a laptop
        True
        >>> bfloat16_convolutions_fail(frozenset({"avx2"}), environ={})  # Eigen emulates it
        False
    """
    flags = cpu_flags() if flags is None else flags
    return (tensorflow_uses_onednn(flags, environ)
            and not (AVX512_CORE <= flags or "amx_bf16" in flags))


def turn_on_onednn_for_training(filters: int, mixed_precision: str = "auto", *,
                                flags: frozenset[str] | None = None,
                                environ: MutableMapping[str, str] | None = None) -> bool:
    """Sets ``TF_ENABLE_ONEDNN_OPTS=1`` where :func:`onednn_helps_training`; whether it did.

    Nothing changes where the variable is set already (the user's choice) or TensorFlow was
    imported (it has read the variable). Call it before TensorFlow starts, as ``unet train``
    does (through :func:`choose_training_kernels`) and as the quickstart notebook does.

    Example:
        >>> turn_on_onednn_for_training(16, flags=frozenset({"avx2"}),
        ...                             environ={"TF_ENABLE_ONEDNN_OPTS": "0"})  # kept
        False
    """
    environ = os.environ if environ is None else environ
    if not _switch_is_ours(environ) or not onednn_helps_training(filters, mixed_precision, flags):
        return False
    environ[ONEDNN_SWITCH] = "1"
    return True


def choose_training_kernels(filters: int | None, mixed_precision: str = "auto", *,
                            flags: frozenset[str] | None = None,
                            environ: MutableMapping[str, str] | None = None) -> str | None:
    """Sets ``TF_ENABLE_ONEDNN_OPTS`` for a ``unet train`` run; the kernels it chose, or None.

    ``"oneDNN"`` where :func:`turn_on_onednn_for_training` turns it on (``filters`` None: not
    known before TensorFlow reads the ``--init`` model, so never); ``"Eigen"`` (``0``) for
    ``mixed_precision`` ``bfloat16`` where :func:`bfloat16_convolutions_fail`; else None,
    TensorFlow's own choice. The same rules as there: the user's value is kept, and nothing
    changes once TensorFlow runs.

    Example:
        >>> choose_training_kernels(16, "bfloat16", flags=frozenset({"avx2", "avx_vnni"}),
        ...                         environ={"TF_ENABLE_ONEDNN_OPTS": "1"})  # the user's: kept
    """
    environ = os.environ if environ is None else environ
    flags = cpu_flags() if flags is None else flags
    if filters is not None and turn_on_onednn_for_training(filters, mixed_precision,
                                                           flags=flags, environ=environ):
        return "oneDNN"
    if (mixed_precision == "bfloat16" and _switch_is_ours(environ)
            and bfloat16_convolutions_fail(flags, environ)):
        environ[ONEDNN_SWITCH] = "0"
        return "Eigen"
    return None


def _switch_is_ours(environ: Mapping[str, str]) -> bool:
    """Whether setting the switch would act and overrule nobody: unset by the user, and
    TensorFlow not yet started (it reads the variable once, at import)."""
    return ONEDNN_SWITCH not in environ and "tensorflow" not in sys.modules


def refuse_failing_bfloat16(flags: frozenset[str] | None = None,
                            environ: Mapping[str, str] | None = None) -> None:
    """Raises :class:`InputError` before any work where bfloat16 convolutions would fail
    (:func:`bfloat16_convolutions_fail`), instead of oneDNN's message at the first step.

    Example:
        >>> refuse_failing_bfloat16(frozenset({"avx2"}), environ={})  # Eigen: nothing to say
    """
    if bfloat16_convolutions_fail(flags, environ):
        raise InputError("mixed_precision bfloat16: TensorFlow runs oneDNN's kernels on this "
                         "CPU, which have no bfloat16 convolutions without AVX-512; train in "
                         "float32 (mixed_precision auto or off), or set TF_ENABLE_ONEDNN_OPTS=0 "
                         "before TensorFlow starts (Eigen emulates bfloat16, slower than "
                         "float32).")
