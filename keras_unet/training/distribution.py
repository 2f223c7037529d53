"""Where training runs: the tf.distribute strategy and the mixed-precision policy.

Strategy (``--strategy``):

- ``multi-worker``: :class:`tf.distribute.MultiWorkerMirroredStrategy` over the workers that the
  ``TF_CONFIG`` environment variable names (every worker runs the same command);
- ``mirrored``: :class:`tf.distribute.MirroredStrategy` over the local GPUs, or over the local
  logical CPU devices when there is no GPU;
- ``default``: one device, no distribution;
- ``auto``: ``multi-worker`` when ``TF_CONFIG`` names more than one task, else ``mirrored`` when
  there is more than one local device, else ``default``.

Precision (``--mixed-precision``): ``off`` is float32; ``float16`` and ``bfloat16`` are Keras's
``mixed_float16`` / ``mixed_bfloat16`` policies (variables in float32, computation in 16 bits,
outputs and losses in float32; with ``mixed_float16`` Keras wraps the optimizer in a
``LossScaleOptimizer``). ``auto`` picks ``mixed_float16`` when a GPU is present, else
``mixed_bfloat16`` when the CPU has native bfloat16 arithmetic (x86 ``avx512_bf16`` or
``amx_bf16``, Arm ``bf16``), else float32: without native support bfloat16 is emulated and is
slower than float32.
"""

from __future__ import annotations

import tensorflow as tf

from keras_unet.errors import InputError
from keras_unet.training.cluster import Cluster, cluster_from_env
from keras_unet.training.config import MIXED_PRECISIONS, STRATEGIES
from keras_unet.training.cpu_kernels import cpu_flags, refuse_failing_bfloat16

POLICIES = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def choose_strategy(setting: str = "auto", cluster: Cluster | None = None
                    ) -> tf.distribute.Strategy:
    """The tf.distribute strategy for ``--strategy`` (see the module docstring for the rules).

    Call it before any other TensorFlow work in the process: a multi-worker strategy has to
    configure the runtime for collective operations first, and TensorFlow lets a process do
    that once, so the multi-worker strategy is made once per process and returned again
    (``unet train`` makes it right after importing TensorFlow).

    Raises:
        ValueError: for an unknown setting, or ``multi-worker`` without a ``TF_CONFIG`` that
            names several tasks.

    Example:
        >>> choose_strategy("default").num_replicas_in_sync
        1
    """
    if setting not in STRATEGIES:
        raise InputError(f"strategy must be one of {', '.join(STRATEGIES)}; got {setting!r}.")
    cluster = cluster_from_env() if cluster is None else cluster
    if setting == "multi-worker" and cluster.num_tasks < 2:
        raise InputError("--strategy multi-worker needs TF_CONFIG naming two or more workers "
                         "(see training/README.md); it is "
                         f"{'unset' if cluster.task_type is None else 'a single task'}.")
    if setting == "multi-worker" or (setting == "auto" and cluster.num_tasks > 1):
        if cluster not in _MULTI_WORKER:
            _MULTI_WORKER[cluster] = _MultiWorkerForKeras()
        return _MULTI_WORKER[cluster]
    devices = local_devices()
    if setting == "mirrored" or (setting == "auto" and len(devices) > 1):
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


_MULTI_WORKER: dict[Cluster, tf.distribute.Strategy] = {}
"""The multi-worker strategy of this process, by the cluster it was made for."""


class _MultiWorkerForKeras(tf.distribute.MultiWorkerMirroredStrategy):
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras 3's ``fit`` gives it.

    Keras 3 (keras-team/keras#20585) reduces a whole ``(x, y, sample_weight)`` batch in one
    call, which only ``MirroredStrategy`` accepts, and reduces scalar logs along ``axis=0``.
    This reduces a nest element by element and scalars without an axis, as ``MirroredStrategy``
    would; everything else is the stock strategy.
    """

    def reduce(self, reduce_op, value, axis):
        def reduce_one(item):
            local = self.experimental_local_results(item)[0]
            scalar = axis is not None and len(getattr(local, "shape", ())) == 0
            return super(_MultiWorkerForKeras, self).reduce(reduce_op, item,
                                                            None if scalar else axis)

        return tf.nest.map_structure(reduce_one, value)


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The tf.distribute name of a strategy: ``MultiWorkerMirroredStrategy``,
    ``MirroredStrategy`` or ``default``.

    Example:
        >>> strategy_name(tf.distribute.get_strategy())
        'default'
    """
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"  # its class is named CollectiveAllReduceStrategy
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "MirroredStrategy"
    return "default"


def local_devices() -> list[str]:
    """Names of the local devices training replicates over: the GPUs, or else the CPUs.

    Example:
        >>> local_devices()
        ['/device:CPU:0']
    """
    gpus = tf.config.list_logical_devices("GPU")
    return [device.name for device in gpus or tf.config.list_logical_devices("CPU")]


def choose_policy(setting: str = "auto", *, has_gpu: bool | None = None,
                  cpu_bfloat16: bool | None = None) -> str:
    """The Keras dtype policy name for ``--mixed-precision``.

    Args:
        setting: ``"auto"``, ``"off"``, ``"float16"`` or ``"bfloat16"``.
        has_gpu: whether a GPU is present (default: ask TensorFlow).
        cpu_bfloat16: whether the CPU computes bfloat16 natively (default:
            :func:`cpu_supports_bfloat16`).

    Returns:
        ``"float32"``, ``"mixed_float16"`` or ``"mixed_bfloat16"``.

    Raises:
        InputError: for an unknown setting, or ``bfloat16`` on a CPU whose kernels cannot
            compute it (:func:`~keras_unet.training.cpu_kernels.refuse_failing_bfloat16`).

    Example:
        >>> choose_policy("auto", has_gpu=True)
        'mixed_float16'
        >>> choose_policy("auto", has_gpu=False, cpu_bfloat16=False)
        'float32'
        >>> choose_policy("bfloat16")
        'mixed_bfloat16'
    """
    if setting not in MIXED_PRECISIONS:
        raise InputError(f"mixed_precision must be one of {', '.join(MIXED_PRECISIONS)}; got "
                         f"{setting!r}.")
    if has_gpu is None:
        has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if setting != "auto":
        if setting == "bfloat16" and not has_gpu:
            refuse_failing_bfloat16()
        return POLICIES[setting]
    if has_gpu:
        return "mixed_float16"
    if cpu_bfloat16 is None:
        cpu_bfloat16 = cpu_supports_bfloat16()
    return "mixed_bfloat16" if cpu_bfloat16 else "float32"


def cpu_supports_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has bfloat16 arithmetic instructions (:func:`cpu_flags`).

    x86 CPUs list ``avx512_bf16`` or ``amx_bf16`` among their ``flags``, Arm CPUs ``bf16`` among
    their ``Features``. Where ``/proc/cpuinfo`` does not exist (macOS, Windows) the answer is
    False, so ``auto`` stays in float32 there.

    Args:
        cpuinfo: the text of ``/proc/cpuinfo`` (default: read it).

    Example:
        >>> cpu_supports_bfloat16("flags\\t: fpu avx2 avx512f avx512_bf16\\n")
        True
        >>> cpu_supports_bfloat16("flags\\t: fpu avx2 fma\\n")
        False
    """
    return bool(cpu_flags(cpuinfo) & BF16_CPU_FLAGS)
