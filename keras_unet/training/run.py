"""``train(config)``: one training run from data to checkpoints, TensorBoard and a served model.

The steps, in order, each failing early with a clear message: check the config, pick the
tf.distribute strategy (first, before other TensorFlow work) and the mixed-precision policy,
read and split the data, choose or resume the run directory, build and compile the U-Net in the
strategy's scope, time a few steps (and with a time limit, shorten the epochs to spread over
it), ``model.fit`` with the callbacks, then export the best model for serving.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_unet import data as unet_data
from keras_unet.class_layout import default_class_names, parse_class_names
from keras_unet.errors import InputError
from keras_unet.instances.settings import CellSettings
from keras_unet.io.paths import refuse_overlap
from keras_unet.losses import CrossentropyDiceLoss, DiceLoss, WeightedCrossentropy
from keras_unet.metrics import Dice, IoU
from keras_unet.model import build_unet
from keras_unet.serving import export_for_serving
from keras_unet.training.callbacks import (
    AtomicCheckpoints,
    FreezeEncoder,
    NaNGuard,
    ObjectF1,
    PatienceOnBest,
    ResumableBackup,
    Throughput,
    ValidationPanel,
    save_model_atomically,
)
from keras_unet.training.cluster import Cluster, check_for_cluster, cluster_from_env
from keras_unet.training.config import TrainConfig, check_tile_size, check_training_memory
from keras_unet.training.distribution import choose_policy, choose_strategy, strategy_name
from keras_unet.training.finetune import inherited_config, load_init_model, transfer_weights
from keras_unet.training.learning_rate import CosineDecayOverBudget
from keras_unet.training.progress import ProgressLine, format_duration
from keras_unet.training.run_dir import RUNS_ROOT, RunDir, prepare_run_dir
from keras_unet.training.step_timing import (
    MEASURED_STEPS,
    WARMUP_STEPS,
    measure_seconds_per_step,
    plan_steps_per_epoch,
)
from keras_unet.training.time_budget import TimeBudget, TrainingTime

PANEL_TILES = 4
"""Validation tiles shown in the TensorBoard image panel."""

MONITOR = "val_loss"
"""The epoch log that picks ``best.keras`` (lowest): the weighted loss on the validation tiles.

The loss, not the foreground IoU, because its border weights also reward separating touching
cells, which the IoU of the foreground barely sees."""


@dataclasses.dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        config: the resolved config (``run_dir`` filled in).
        run: the run directory and its parts.
        model: the trained model (weights of the last epoch; of the best one with
            ``patience``).
        history: per-epoch logs of this process's ``fit`` (only the epochs it ran after a resume).
        best: ``{"monitor", "value", "epoch", "logs"}`` of ``best.keras`` (lowest validation
            loss), if one was saved.
        export: the folder of the exported model (None on non-chief workers and without
            ``config.export``).
        validation: the held-out samples as ``images/`` + ``masks/`` (None on non-chief
            workers), for ``unet predict`` and ``unet evaluate``.
        policy: the Keras mixed-precision policy used.
        strategy: ``"MultiWorkerMirroredStrategy"``, ``"MirroredStrategy"`` or ``"default"``.
        resumed: whether the run resumed an interrupted one.
        cells: the cell settings recorded in ``best.keras`` and the export: chosen on the
            validation images (:func:`keras_unet.evaluation.best_cell_settings`), else those of
            the ``init`` model; None for semantic classes, on non-chief workers, and without
            validation images or a model to start from.
        cell_scores: object F1 on the validation images of each ``(method, min_size)`` tried.
        stop_reason: why training stopped: ``"epochs"`` (all done), ``"time_limit"``
            (``config.time_limit`` reached) or ``"patience"`` (early stopping).
        training_seconds: training time of the whole run, a resumed one included (what counts:
            :mod:`keras_unet.training.time_budget`).
        steps: training steps of the whole run.
        epochs_done: finished epochs of the whole run (the one the time limit ended included).
        steps_per_epoch: steps of each epoch: ``config.steps_per_epoch``, or fewer so that the
            epochs spread over ``config.time_limit``.
        chief: whether this process is the chief (or only) worker, the one that writes the
            checkpoints, the cell settings and the export and reports the run.

    Example:
        >>> from keras_unet.training.run_dir import RunDir
        >>> result = TrainResult(TrainConfig(epochs=15, time_limit=5), RunDir(Path("runs/a"),
        ...                      resume=False), None, {"loss": [0.9, 0.4], "val_loss": [0.8, 0.5]},
        ...                      None, None, None, "float32", "default", False, None, {},
        ...                      "time_limit", 300.4, 812, 7, 120)
        >>> result.final, str(result.run.logs)
        ({'loss': 0.4, 'val_loss': 0.5}, 'runs/a/logs')
        >>> result.stopped
        'time limit of 5 min reached after 812 steps (epoch 7 of 15)'
    """

    config: TrainConfig
    run: RunDir
    model: keras.Model
    history: dict[str, list[float]]
    best: dict[str, Any] | None
    export: Path | None
    validation: Path | None
    policy: str
    strategy: str
    resumed: bool
    cells: CellSettings | None
    cell_scores: dict[tuple[str, int], float]
    stop_reason: str
    training_seconds: float
    steps: int
    epochs_done: int
    steps_per_epoch: int
    chief: bool = True

    @property
    def final(self) -> dict[str, float]:
        """The last epoch's logs (empty if no epoch ran)."""
        return {key: values[-1] for key, values in self.history.items() if values}

    @property
    def stopped(self) -> str:
        """Why and when training stopped, in words (``unet train`` prints it)."""
        epochs = f"epoch {self.epochs_done} of {self.config.epochs}"
        if self.stop_reason == "time_limit":
            return (f"time limit of {format_duration(self.config.time_limit_seconds)} reached "
                    f"after {self.steps} steps ({epochs})")
        if self.stop_reason == "patience":
            return (f"no lower validation loss for {self.config.patience} epochs, after "
                    f"{self.steps} steps ({epochs}) in {format_duration(self.training_seconds)}")
        done = ("its one epoch" if self.config.epochs == 1 else
                f"all {self.config.epochs} epochs")
        return f"{done} done in {format_duration(self.training_seconds)} ({self.steps} steps)"


def train(config: TrainConfig | Mapping[str, Any] | None = None, *, overwrite: bool = False,
          verbose: int | None = None,
          callbacks: Sequence[keras.callbacks.Callback] = ()) -> TrainResult:
    """Trains a U-Net as ``config`` says and exports the best model for serving.

    Before training it times a few steps and says how long training should take; with
    ``config.time_limit`` it also shortens the epochs so that ``config.epochs`` of them spread
    over the limit (:func:`~keras_unet.training.step_timing.plan_steps_per_epoch`), stops at the
    limit (the epoch it stops in is validated and checkpointed) and decays the learning rate
    over the steps or the time, whichever runs out first
    (:class:`~keras_unet.training.learning_rate.CosineDecayOverBudget`). A resumed run keeps
    the epoch length and trains only for what is left of the limit.

    Writes to the run directory (see :mod:`keras_unet.training.run_dir`): ``config.yaml``,
    ``logs/`` for TensorBoard (loss, IoU, Dice, learning rate, ``tiles_per_second``, object F1
    at IoU 0.5 on the whole validation images as ``val_object_f1``; validation
    image panels under ``logs/images``), ``backup/`` until the run ends (so a killed run started
    again with the same config resumes at its last finished epoch, or goes on to its cells and
    export), ``checkpoints/best.keras`` and
    ``checkpoints/last.keras`` (written atomically), ``export/<version>/`` (a float32
    SavedModel for TF-Serving, :func:`keras_unet.serving.export_for_serving`; not with
    ``export: false``) and
    ``validation/`` (the held-out images and their masks, for ``unet predict`` and ``unet
    evaluate``), ``training_time.json`` (:class:`~keras_unet.training.time_budget.TrainingTime`).
    With several workers only the chief writes there; the others keep their backup under
    ``workers/<task>/``. On cells, the instance method and ``min_size`` of
    :func:`keras_unet.instances.instance_labels` are then chosen on the validation images with
    the best model, and recorded in ``best.keras`` and the export (:attr:`TrainResult.cells`).

    Args:
        config: a :class:`TrainConfig`, a mapping of its fields, or None for the defaults.
        overwrite: move an earlier, different run in ``config.run_dir`` aside instead of
            refusing to start.
        verbose: 0 silent (and, without a time limit, no steps timed before training: their
            estimate would be for nobody); 1 status lines and one progress line for the whole
            run, rewritten in place on a terminal and written once per epoch otherwise (CI
            logs, :class:`~keras_unet.training.progress.ProgressLine`); 2 the same, always
            once per epoch. Default 1.
        callbacks: Keras callbacks of the caller's, appended to the run's own (they see every
            training step of ``model.fit`` after the run's callbacks, and may stop it by
            raising): a live readout and a Cancel button of a GUI, for instance
            (:mod:`keras_unet.napari`). Not part of the config: a resumed run takes them anew.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: for a bad config value, unreadable data, a global batch that does not
            split evenly across the replicas.
        FileNotFoundError: if ``config.data`` does not exist.
        FileExistsError: if ``config.run_dir`` holds another run and ``overwrite`` is False.
        FloatingPointError: if the loss became NaN or infinite (the message says where).

    Example:
        >>> import tempfile
        >>> result = train({"run_dir": tempfile.mkdtemp() + "/run", "synthetic_images": 3,
        ...                 "epochs": 1, "steps_per_epoch": 1, "batch_size": 2,
        ...                 "tile_size": 92, "depth": 2, "filters": 2, "val_fraction": 0.34,
        ...                 "mixed_precision": "off"}, verbose=0)
        >>> sorted(result.history)[4:], result.policy
        (['val_dice', 'val_iou', 'val_loss', 'val_object_f1'], 'float32')
        >>> sorted(p.name for p in result.run.checkpoints.iterdir())
        ['best.json', 'best.keras', 'last.keras']
    """
    config = _as_config(config)
    verbose = 1 if verbose is None else verbose
    say = print if verbose else _silent
    cluster = cluster_from_env()
    check_for_cluster(config, cluster)
    refuse_overlap(config.run_dir or RUNS_ROOT, {"--data": config.data, "--init": config.init},
                   "--run-dir" if config.run_dir else "the run folder runs/")
    strategy = choose_strategy(config.strategy, cluster)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise InputError(f"batch_size {config.batch_size} does not split evenly over {replicas} "
                         f"replicas; use a multiple of {replicas}.")
    policy = choose_policy(config.mixed_precision)
    trained = None if config.init is None else load_init_model(config.init, "--init")
    config = inherited_config(config, trained)
    config, samples, volume = _samples_and_kind(config)
    train_samples, val_samples = split_samples(samples, config.val_fraction, config.seed)
    train_data, val_data = _datasets(config, train_samples, val_samples, cluster, replicas,
                                     volume)
    if trained is not None:  # checked before the run folder is touched
        recreated = transfer_weights(trained, _build_model(config, _channels(train_samples),
                                                           volume))
    run = _prepare_run(config, cluster, overwrite, strategy)
    config = config.replace(run_dir=str(run.path if cluster.is_chief else config.run_dir))
    if run.replaced is not None:
        say(f"unet train: moved the earlier run to {run.replaced}")
    validation = None
    if cluster.is_chief and val_samples:
        validation = run.validation
        unet_data.save_samples(val_samples, validation, ignore_label=config.ignore_label)
    monitor = MONITOR if val_samples else None
    say(f"unet train: {'resuming' if run.resume else 'starting'} run {run.path}: "
        f"{_split_text(train_samples, val_samples, len(samples))}"
        f"{'' if volume is None else volume.describe()}, "
        f"{_strategy_text(strategy)} with {replicas} replica(s) "
        f"({config.batch_size // replicas} tiles each), {policy} precision")
    if trained is not None:
        say(f"unet train: starting from {config.init}, a network of depth {config.depth}, "
            f"{config.filters} filters, {config.padding} padding, on {config.tile_size} px "
            "tiles" + (
                f" (its {trained.output_shape[-1]} classes -> {config.num_classes}: the final "
                "1x1 convolution is re-created)" if recreated else "") + (
                f"; encoder frozen for epochs 1-{config.frozen_epochs}" if config.freeze_encoder
                else ""))

    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            model = _build_model(config, _channels(train_samples), volume)
            if trained is not None:
                transfer_weights(trained, model)
            _compile(model, config)
            model.optimizer.build(model.trainable_variables)  # all of them, frozen or not
        record = _plan(config, run, cluster, model, train_data, say if verbose else None)
        guard = NaNGuard(hint=f"lower learning_rate (it is {config.learning_rate:g}), or "
                              "try mixed_precision off.")
        budget = TimeBudget(config.time_limit_seconds, record, run.training_time)
        run_callbacks = _callbacks(config, run, cluster, guard, budget, val_data, val_samples,
                                   monitor)
        if verbose:
            run_callbacks.append(ProgressLine(config.epochs, record.steps_per_epoch, budget,
                                              in_place=verbose == 1 and sys.stdout.isatty(),
                                              prefix="unet train: "))
        history = model.fit(train_data, epochs=config.epochs,
                            steps_per_epoch=record.steps_per_epoch, validation_data=val_data,
                            callbacks=[*run_callbacks, *callbacks], verbose=0, shuffle=False)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    if guard.message:  # the backup may hold the diverged weights: the run ends here, as before
        shutil.rmtree(run.backup, ignore_errors=True)
        raise FloatingPointError(guard.message)
    if not cluster.is_chief:  # its replica's final weights, the chief's too
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        save_model_atomically(model, run.checkpoints / "last.keras")
    patience = next((c for c in run_callbacks if isinstance(c, PatienceOnBest)), None)
    stop_reason = ("time_limit" if budget.stopped_at is not None else
                   "patience" if patience is not None and patience.stopped_epoch else "epochs")
    best = export = cells = None
    scores = {}
    if config.patience is not None and (run.checkpoints / "best.keras").is_file():
        best_model = keras.models.load_model(run.checkpoints / "best.keras", compile=False)
        model.set_weights(best_model.get_weights())  # early stopping keeps the best epoch
    if cluster.is_chief:
        best = AtomicCheckpoints(run.checkpoints, monitor, "min").best_state()
        if config.label_mode == "instances":
            cells, scores = _cell_settings(run, model, val_samples, trained)
        if config.export:
            export = _export(config, run, model, _channels(train_samples), volume)
    shutil.rmtree(run.backup, ignore_errors=True)  # finished: the same command is now refused
    return TrainResult(config, run, model, history.history, best, export, validation, policy,
                       strategy_name(strategy), run.resume, cells, scores, stop_reason,
                       budget.training_seconds,
                       int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
                       budget.record.epochs_done, record.steps_per_epoch, cluster.is_chief)


def _strategy_text(strategy: tf.distribute.Strategy) -> str:
    """``MirroredStrategy``, ``MultiWorkerMirroredStrategy``, or ``default strategy``."""
    name = strategy_name(strategy)
    return "default strategy" if name == "default" else name


def split_samples(samples: list, val_fraction: float, seed: int = 0) -> tuple[list, list]:
    """Splits labelled images into training and validation sets.

    Two or more images: whole images are held out, chosen at random (at least one on each
    side). A single image: the last ``val_fraction`` of it along its longer side is held out
    as a band, and training sees only the rest, so no training tile (its output or its
    context, which is mirrored from the training part at the cut) ever overlaps the band.
    ``val_fraction`` 0 holds out nothing.

    Args:
        samples: the labelled images.
        val_fraction: fraction held out, rounded to whole images (or, for one image, rows).
        seed: seed of the shuffle.

    Raises:
        ValueError: for no samples, or one image too small to cut.

    Example:
        >>> train_set, val_set = split_samples(list(range(10)), 0.2)
        >>> len(train_set), len(val_set), sorted(train_set + val_set) == list(range(10))
        (8, 2, True)
        >>> from keras_unet.data import Sample
        >>> one = Sample(np.zeros((100, 80)), np.zeros((100, 80), "int32"), "a.png")
        >>> [(part.path, part.image.shape) for parts in split_samples([one], 0.2) for part in parts]
        [('a.png:rows0-79', (80, 80)), ('a.png:rows80-99', (20, 80))]
    """
    if not samples:
        raise InputError("no labelled images to train on.")
    if val_fraction == 0:
        return list(samples), []
    if len(samples) == 1:
        return hold_out_band(samples[0], val_fraction)
    order = np.random.default_rng(seed).permutation(len(samples))
    count = min(max(1, round(val_fraction * len(samples))), len(samples) - 1)
    held_out = sorted(order[:count])
    return [samples[i] for i in sorted(order[count:])], [samples[i] for i in held_out]


def hold_out_band(sample: unet_data.Sample, val_fraction: float) -> tuple[list, list]:
    """One image as a training part and a held-out band (the last rows, or columns if wider).

    Example:
        >>> from keras_unet.data import Sample
        >>> wide = Sample(np.zeros((10, 40)), np.zeros((10, 40), "int32"), "synthetic:0")
        >>> [part.path for parts in hold_out_band(wide, 0.25) for part in parts]
        ['synthetic:0:cols0-29', 'synthetic:0:cols30-39']
    """
    axis = int(np.argmax(sample.labels.shape))  # the longest axis (the first of a tie)
    length = sample.labels.shape[axis]
    if length < 2:
        raise InputError(f"{sample.path}: a single image of {sample.labels.shape} cannot be cut "
                         "into a training part and a validation band; add a second image or "
                         "use val_fraction 0.")
    count = min(max(1, round(val_fraction * length)), length - 1)
    cut = length - count
    name = ("rows", "cols") if sample.labels.ndim == 2 else ("planes", "rows", "cols")
    name = name[axis]

    def part(start: int, stop: int) -> unet_data.Sample:
        index = (slice(None),) * axis + (slice(start, stop),)
        return unet_data.Sample(np.ascontiguousarray(sample.image[index]),
                                np.ascontiguousarray(sample.labels[index]),
                                f"{sample.path}:{name}{start}-{stop - 1}", sample.spacing)

    return [part(0, cut)], [part(cut, length)]


def _split_text(train_samples: list, val_samples: list, images: int) -> str:
    """The status line's account of the split, naming the band when one image was cut."""
    if not val_samples:
        return f"{len(train_samples)} training images, none held out (val_fraction 0)"
    if images == 1:
        band = val_samples[0].path.rsplit(":", 1)[1].replace("rows", "rows ")
        band = band.replace("planes", "planes ")
        kind = "image" if val_samples[0].labels.ndim == 2 else "volume"
        return (f"one labelled {kind}, its {band.replace('cols', 'columns ')} held out for "
                "validation (no training tile touches them)")
    return f"{len(train_samples)} training / {len(val_samples)} validation images"


def _silent(*args, **kwargs) -> None:
    """Swallows status lines when ``verbose=0``."""


def _as_config(config) -> TrainConfig:
    if config is None:
        return TrainConfig()
    if isinstance(config, TrainConfig):
        return config
    return TrainConfig.from_mapping(config)


def _load_samples(config: TrainConfig) -> list:
    if config.data is None:
        if config.ndim == 3:
            from keras_unet.training.config import SYNTHETIC_VOLUME_SIZE

            return unet_data.synthetic_volumes(config.synthetic_images,
                                               size=SYNTHETIC_VOLUME_SIZE, seed=config.seed,
                                               spacing=config.voxel_spacing or (1.0, 1.0, 1.0))
        return unet_data.synthetic_cells(config.synthetic_images, seed=config.seed)
    return unet_data.load_samples(
        config.data, config.labels, ignore_label=config.ignore_label,
        num_classes=config.num_classes if config.labels == "semantic" else None,
        ndim=config.ndim, spacing=config.voxel_spacing)


@dataclasses.dataclass(frozen=True)
class VolumeLayout:
    """What a volume run builds and tiles: the voxel size, the network's per-axis layout
    (:func:`keras_unet.geometry.anisotropic_pooling`) and the tile ``(planes, size, size)``."""

    spacing: tuple[float, float, float] | None
    pooling: tuple | None
    kernel_sizes: tuple | None
    tile: tuple[int, int, int]

    def describe(self) -> str:
        """The status line's account of the volumes."""
        voxel = ("" if self.spacing is None else
                 f", voxels {'x'.join(f'{v:g}' for v in self.spacing)}")
        return f" (volumes{voxel}; tiles of {'x'.join(str(t) for t in self.tile)} voxels)"


def volume_layout(config: TrainConfig, spacing) -> VolumeLayout:
    """The layout of a volume run: the network from ``spacing``, the tile from ``tile_size``
    (y and x) and ``tile_depth`` (else the planes whose output spans about the physical depth
    that the tile's output spans in y and x).

    Raises:
        ValueError: for a tile an axis of the network cannot take, naming the option.

    Example:
        >>> volume_layout(TrainConfig(tile_size=60, depth=2), (2.0, 0.5, 0.5)).tile  # 5 planes out
        (9, 60, 60)
    """
    from keras_unet import geometry

    pooling = kernel_sizes = None
    if spacing is not None and len(set(spacing)) > 1:
        pooling, kernel_sizes = geometry.anisotropic_pooling(spacing, config.depth)
    layouts = geometry.axis_layouts(3, config.depth, pooling, kernel_sizes)
    common = {"depth": config.depth, "padding": config.padding}
    try:
        out = min(geometry.output_size(config.tile_size, pools=pools, kernels=kernels, **common)
                  for pools, kernels in layouts[1:])
    except ValueError as error:
        raise InputError(f"tile_size: {error}") from None
    z_pools, z_kernels = layouts[0]
    if config.tile_depth is not None:
        try:
            geometry.output_size(config.tile_depth, pools=z_pools, kernels=z_kernels, **common)
        except ValueError as error:
            raise InputError(f"tile_depth: {error}") from None
        planes = config.tile_depth
    else:
        ratio = 1.0 if spacing is None else spacing[1] / spacing[0]
        planes = geometry.valid_input_size(max(1, math.ceil(out * ratio - 1e-9)),
                                           pools=z_pools, kernels=z_kernels, **common)
    return VolumeLayout(None if spacing is None else tuple(spacing), pooling, kernel_sizes,
                        (planes, config.tile_size, config.tile_size))


def _samples_and_kind(config: TrainConfig) -> tuple[TrainConfig, list, VolumeLayout | None]:
    """The samples, the config for their kind (:meth:`TrainConfig.for_images` for images,
    :meth:`TrainConfig.for_volumes` for volumes, which also records ``ndim: 3``) and, for
    volumes, their layout. A 2D tile is checked before the data are read when the kind is
    known (``ndim: 2``, or the synthetic 2D demo), else once they are.

    Raises:
        ValueError: if ``ndim`` was given and the data are of the other kind, naming ``data``;
            if a 2D tile does not suit the network (:func:`check_tile_size`), or the network
            does not fit this machine's memory (:func:`check_training_memory`).
    """
    if config.ndim == 3:
        config = config.for_volumes()
        check_training_memory(config, 3)
    elif config.ndim == 2 or config.data is None:
        check_tile_size(config.for_images())
        check_training_memory(config.for_images())
    samples = _load_samples(config)
    ndim = samples[0].labels.ndim if samples else 2
    if config.ndim is not None and ndim != config.ndim:
        kind = "volumes (masks are stacks)" if ndim == 3 else "2D images"
        raise InputError(f"ndim is {config.ndim} but data {config.data!r} holds {kind}.")
    if ndim == 2:
        config = config.for_images()
        check_tile_size(config)
        check_training_memory(config)
        return config, samples, None
    if config.ndim is None:
        config = config.for_volumes().replace(ndim=3)
        check_training_memory(config, 3)
    spacing = config.voxel_spacing or next((s.spacing for s in samples if s.spacing), None)
    return config, samples, volume_layout(config, spacing)


def class_names(config: TrainConfig) -> tuple[str, ...]:
    """The names recorded in the model: ``config.class_names``, else the mode's defaults.

    Example:
        >>> class_names(TrainConfig(num_classes=3))
        ('background', 'cell', 'border')
    """
    return (parse_class_names(config.class_names, config.num_classes, "class_names")
            or default_class_names(config.num_classes, config.label_mode))


def _channels(samples: list) -> int:
    image, labels = samples[0].image, samples[0].labels
    return 1 if image.ndim == labels.ndim else image.shape[-1]


def _prepare_run(config: TrainConfig, cluster: Cluster, overwrite: bool,
                 strategy: tf.distribute.Strategy) -> RunDir:
    """The chief prepares the run dir; other workers wait for it, then use their own folder."""
    if cluster.is_chief:
        run = prepare_run_dir(config, overwrite=overwrite)
    if cluster.num_tasks > 1:
        _barrier(strategy)
    if cluster.is_chief:
        return run
    path = Path(config.run_dir) / "workers" / cluster.name
    path.mkdir(parents=True, exist_ok=True)
    return RunDir(path, resume=(path / "backup").is_dir())


def _barrier(strategy: tf.distribute.Strategy) -> None:
    """Blocks until every worker gets here (an all-reduce of one number)."""
    ones = strategy.run(lambda: tf.constant(1.0))
    strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None).numpy()


def _build_model(config: TrainConfig, channels: int,
                 volume: VolumeLayout | None = None) -> keras.Model:
    if volume is not None:
        return build_unet((None, None, None, channels), config.num_classes,
                          filters=config.filters, depth=config.depth, padding=config.padding,
                          batch_norm=config.batch_norm, dropout=config.dropout,
                          class_names=class_names(config), spacing=volume.spacing)
    return build_unet((None, None, channels), config.num_classes, filters=config.filters,
                      depth=config.depth, padding=config.padding, batch_norm=config.batch_norm,
                      dropout=config.dropout, class_names=class_names(config))


def _compile(model: keras.Model, config: TrainConfig) -> None:
    """Compiles with the initial learning rate; :class:`CosineDecayOverBudget` decays it."""
    learning_rate = config.learning_rate
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate, momentum=config.momentum)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    foreground = list(range(1, config.num_classes))
    losses = {"weighted_crossentropy": WeightedCrossentropy(),
              "dice": DiceLoss(class_ids=foreground),
              "crossentropy_dice": CrossentropyDiceLoss(dice_class_ids=foreground)}
    metrics = [IoU(config.num_classes, foreground, name="iou"),
               Dice(config.num_classes, foreground, name="dice")]
    if config.label_mode == "semantic":  # every class's own score beside the mean
        metrics += [IoU(config.num_classes, [index], name=f"iou_{_metric_name(name)}")
                    for index, name in enumerate(class_names(config))]
    model.compile(optimizer=optimizer, loss=losses[config.loss], metrics=metrics)


def _metric_name(class_name: str) -> str:
    """A class name as part of a Keras metric (and TensorBoard tag) name."""
    return "".join(c if c.isalnum() else "_" for c in class_name.lower())


def _datasets(config: TrainConfig, train_samples: list, val_samples: list, cluster: Cluster,
              replicas: int, volume: VolumeLayout | None = None
              ) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
    """Training tiles (endless, augmented) and the fixed validation tiles (None without).

    With several workers each one draws its own training tiles (a seed per worker, no
    sharding, so no worker computes tiles it throws away) and evaluates its share of the
    validation batches.
    """
    common = dict(tile_size=config.tile_size, batch_size=config.batch_size,
                  num_classes=config.num_classes, labels=config.label_mode, depth=config.depth,
                  padding=config.padding)
    if volume is not None:
        common.update(tile_size=volume.tile, pooling=volume.pooling,
                      kernel_sizes=volume.kernel_sizes, spacing=volume.spacing)
    worker_seed = int(np.random.SeedSequence([config.seed, cluster.rank]).generate_state(1)[0])
    train_data = unet_data.make_dataset(
        train_samples, augment=config.elastic, shuffle=True, repeat=True,
        seed=config.seed if cluster.num_tasks == 1 else worker_seed, **common)
    train_options = tf.data.Options()
    train_options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF)
    val_options = tf.data.Options()
    val_options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    if not val_samples:
        return train_data.with_options(train_options), None
    val_data = unet_data.make_dataset(val_samples, augment=False, shuffle=False, repeat=False,
                                      **common)
    return (train_data.with_options(train_options),
            _full_batches(val_data, config.batch_size, replicas).with_options(val_options))


def _full_batches(val_data: tf.data.Dataset, batch_size: int, replicas: int) -> tf.data.Dataset:
    """The validation tiles, kept in memory, in batches Keras and every replica can take.

    The tiles are the same every epoch, so they are cached after the first pass and counted,
    so that Keras knows where the set ends. With several replicas a last, partial batch would
    leave some replica without tiles, which TensorFlow's CPU convolutions refuse; the tiles are
    then padded to whole batches with blank tiles of weight 0. IoU and Dice leave weight-0
    pixels out; the validation loss, a mean over pixels, is diluted by at most
    ``(batch_size - 1) / tiles``.
    """
    tiles = val_data.unbatch().cache()
    count = sum(1 for _ in tiles)
    missing = -count % batch_size if replicas > 1 else 0
    if missing:
        blank = tf.nest.map_structure(tf.zeros_like, next(iter(tiles)))
        tiles = tiles.concatenate(tf.data.Dataset.from_tensors(blank).repeat(missing))
    batches = -(-(count + missing) // batch_size)
    return tiles.batch(batch_size).apply(tf.data.experimental.assert_cardinality(batches))


def _plan(config: TrainConfig, run: RunDir, cluster: Cluster, model: keras.Model,
          train_data: tf.data.Dataset, say: Callable[[str], None] | None) -> TrainingTime:
    """Times a few steps, chooses the epoch length (kept on resume) and says what to expect.

    A resumed run continues its record (:class:`TrainingTime`); a new one starts one with the
    epoch length that spreads ``config.epochs`` over the time limit. Steps are timed only
    for a limit or for ``say`` (None: a silent run): untimed, the epochs keep their length.
    Several workers are not timed: each would time its own steps (no limit is allowed there).
    """
    record = TrainingTime.read(run.training_time) if run.resume else None
    if cluster.num_tasks > 1 or (say is None and config.time_limit_seconds is None):
        return record or TrainingTime(config.steps_per_epoch)
    seconds_per_step = measure_seconds_per_step(model, train_data)
    limit = config.time_limit_seconds
    if record is None or record.steps_per_epoch is None:
        record = TrainingTime(plan_steps_per_epoch(limit, config.epochs, config.steps_per_epoch,
                                                   seconds_per_step))
    expected = (config.epochs - record.epochs_done) * record.steps_per_epoch * seconds_per_step
    details = (f"{seconds_per_step:.2g} s per step over steps {WARMUP_STEPS + 1}-"
               f"{WARMUP_STEPS + MEASURED_STEPS}")
    if limit is not None:
        expected = min(expected, max(0.0, limit - record.seconds))
        details += f"; limit {format_duration(limit)}"
        if record.steps_per_epoch < config.steps_per_epoch:
            details += f", so epochs of {record.steps_per_epoch} steps"
    if record.epochs_done:
        details += f"; {format_duration(record.seconds)} trained before"
    if say is not None:
        say(f"unet train: about {format_duration(expected)} of training "
            f"{'left' if record.epochs_done else 'expected'} on this machine ({details})")
    return record


def _callbacks(config: TrainConfig, run: RunDir, cluster: Cluster, guard: NaNGuard,
               budget: TimeBudget, val_data: tf.data.Dataset | None, val_samples: list,
               monitor: str | None) -> list[keras.callbacks.Callback]:
    """The run's callbacks, in the order they must see each epoch's end.

    The time record before the backup (:class:`TimeBudget`), the learning rate after it (it
    reads the restored step counter), object F1 before the checkpoints that log it.
    """
    # One process keeps its backup past fit() until the cells are chosen and the export written
    # (train() removes it then), so a kill in between resumes; several workers must resume
    # together, so theirs ends with fit(), as Keras's does.
    callbacks = [guard, Throughput(config.batch_size), budget,
                 ResumableBackup(str(run.backup), double_checkpoint=True,
                                 delete_checkpoint=cluster.num_tasks > 1)]
    if config.learning_rate_schedule == "cosine":
        callbacks.append(CosineDecayOverBudget(config.learning_rate,
                                               config.epochs * budget.record.steps_per_epoch,
                                               budget))
    if config.freeze_encoder:
        callbacks.append(FreezeEncoder(config.frozen_epochs))
    if not cluster.is_chief:
        return callbacks
    if val_samples and config.label_mode == "instances":  # first: best.json logs what it adds
        callbacks.append(ObjectF1(val_samples))
    checkpoints = AtomicCheckpoints(run.checkpoints, monitor, "min")
    callbacks.append(checkpoints)
    if config.patience is not None and monitor is not None:
        callbacks.append(PatienceOnBest(checkpoints, config.patience))
    if val_data is not None:
        images, labels, weights = (np.asarray(part)[:PANEL_TILES]
                                   for part in next(iter(val_data.take(1))))
        callbacks.append(ValidationPanel(run.logs / "images", images, labels, weights,
                                         class_names(config)))
    return callbacks + [
        keras.callbacks.TensorBoard(str(run.logs), write_graph=False, profile_batch=0)]


def _cell_settings(run: RunDir, model: keras.Model, val_samples: list,
                   trained: keras.Model | None
                   ) -> tuple[CellSettings | None, dict[tuple[str, int], float]]:
    """Chooses the cell settings of the best model on the validation images (else keeps the
    ``init`` model's) and records them in ``best.keras``, which is saved again with them."""
    from keras_unet.evaluation.drivers import best_cell_settings
    from keras_unet.inference.tiled import predict_tiled
    from keras_unet.instances.settings import settings_of

    path = run.checkpoints / "best.keras"
    best = keras.models.load_model(path) if path.is_file() else model
    if val_samples:
        cells, scores = best_cell_settings([s.labels for s in val_samples],
                                           [predict_tiled(best, s.image) for s in val_samples],
                                           spacing=getattr(best, "arguments", {}).get("spacing"))
    elif trained is not None and getattr(trained, "arguments", {}).get("cells") is not None:
        cells, scores = settings_of(trained), {}
    else:
        return None, {}
    best.record_cells(cells)
    model.record_cells(cells)
    if path.is_file():
        save_model_atomically(best, path)
    return cells, scores


def _export(config: TrainConfig, run: RunDir, model: keras.Model, channels: int,
            volume: VolumeLayout | None = None) -> Path:
    """Exports the best model (``best.keras``, else ``model``) as a float32 copy of the network,
    with the cell settings it carries."""
    path = run.checkpoints / "best.keras"
    best = keras.models.load_model(path, compile=False) if path.is_file() else model
    serving_model = _build_model(config, channels, volume)
    serving_model.set_weights(best.get_weights())
    cells = getattr(best, "arguments", {}).get("cells")
    if cells is not None:
        serving_model.arguments["cells"] = dict(cells)
    return Path(export_for_serving(serving_model, run.export))
