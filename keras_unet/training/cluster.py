"""Which worker this process is: the cluster ``TF_CONFIG`` describes, and what several workers
cannot do together. No TensorFlow here, so the command line checks a run before importing it.
"""

from __future__ import annotations

import dataclasses
import json
import os

from keras_unet.errors import InputError
from keras_unet.training.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's place among the workers that ``TF_CONFIG`` describes.

    Attributes:
        num_tasks: chief and worker tasks in the cluster (1 without ``TF_CONFIG``).
        task_type: ``"chief"``, ``"worker"`` or ``None`` without ``TF_CONFIG``.
        task_index: index of this task among tasks of its type.
        has_chief: whether the cluster has a ``chief`` task (else worker 0 is the chief).

    Example:
        >>> Cluster(1, None, 0).is_chief
        True
    """

    num_tasks: int
    task_type: str | None
    task_index: int
    has_chief: bool = False

    @property
    def is_chief(self) -> bool:
        """Whether this task writes the run dir (checkpoints, TensorBoard, export)."""
        return self.task_type in (None, "chief") or (
            self.task_type == "worker" and self.task_index == 0 and not self.has_chief)

    @property
    def rank(self) -> int:
        """Position of this task among all tasks: the chief first, then the workers.

        Example:
            >>> Cluster(3, "worker", 1, has_chief=True).rank
            2
        """
        if self.task_type == "worker" and self.has_chief:
            return self.task_index + 1
        return self.task_index

    @property
    def name(self) -> str:
        """``"<type>-<index>"``, used to name a non-chief worker's private folders."""
        return f"{self.task_type or 'local'}-{self.task_index}"


def cluster_from_env(environ: dict | None = None) -> Cluster:
    """Reads ``TF_CONFIG`` (JSON with ``cluster`` and ``task``) into a :class:`Cluster`.

    Raises:
        ValueError: if ``TF_CONFIG`` is set but is not the JSON that tf.distribute expects.

    Example:
        >>> tf_config = {"cluster": {"worker": ["127.0.0.1:2001", "127.0.0.1:2002"]},
        ...              "task": {"type": "worker", "index": 1}}
        >>> cluster = cluster_from_env({"TF_CONFIG": json.dumps(tf_config)})
        >>> cluster.num_tasks, cluster.is_chief, cluster.name
        (2, False, 'worker-1')
    """
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG", "").strip()
    if not text:
        return Cluster(1, None, 0)
    try:
        tf_config = json.loads(text)
        cluster = tf_config["cluster"]
        task_type = tf_config["task"]["type"]
        task_index = int(tf_config["task"]["index"])
        tasks = {kind: list(cluster.get(kind, [])) for kind in ("chief", "worker")}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InputError(
            "TF_CONFIG must be JSON like {\"cluster\": {\"worker\": [\"host1:port\", "
            f"\"host2:port\"]}}, \"task\": {{\"type\": \"worker\", \"index\": 0}}}}; got {text!r} "
            f"({type(error).__name__}: {error})."
        ) from None
    if task_type not in tasks or not 0 <= task_index < len(tasks[task_type]):
        raise InputError(f"TF_CONFIG task {task_type!r} #{task_index} is not in its cluster "
                         f"{cluster!r}.")
    return Cluster(len(tasks["chief"]) + len(tasks["worker"]), task_type, task_index,
                   bool(tasks["chief"]))


def check_for_cluster(config: TrainConfig, cluster: Cluster) -> None:
    """Refuses what several workers cannot do together, before any of them starts.

    Example:
        >>> check_for_cluster(TrainConfig(patience=2), Cluster(2, "worker", 0))
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: patience (early stopping) works with one worker only; ...
    """
    if cluster.num_tasks < 2:
        return
    if config.time_limit is not None:
        raise InputError("time_limit works with one worker only (each worker's own clock would "
                         "stop it at another step, leaving the others waiting); leave it unset "
                         "for multi-worker training.")
    if config.patience is not None:
        raise InputError("patience (early stopping) works with one worker only; leave it unset "
                         "for multi-worker training.")
    if config.run_dir is None:
        raise InputError("multi-worker training needs --run-dir: every worker must name the "
                         "same run.")
    if config.batch_size % cluster.num_tasks:  # each worker's devices are only known later
        raise InputError(f"batch_size {config.batch_size} does not split evenly over "
                         f"{cluster.num_tasks} workers; use a multiple of {cluster.num_tasks}.")
