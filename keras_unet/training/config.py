"""The training configuration: one dataclass, read from YAML, overridden from the command line.

A run is fully described by a :class:`TrainConfig`. Its defaults are the small CPU demo that
``unet train`` runs without arguments (``training/cpu_demo.yaml`` spells them out);
``training/paper.yaml`` is the setup of Ronneberger et al. (2015). Every value is checked when
the config is made, so a typo or an out-of-range value fails before any data is read, naming
the key and, for an unknown key, the closest known one.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from keras_unet import geometry
from keras_unet.class_layout import LABEL_MODES, NUM_CLASSES, parse_class_names
from keras_unet.errors import InputError
from keras_unet.io.config_files import read_yaml, shown

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")
LOSSES = ("weighted_crossentropy", "dice", "crossentropy_dice")
MIXED_PRECISIONS = ("auto", "off", "float16", "bfloat16")
STRATEGIES = ("auto", "default", "mirrored", "multi-worker")

DEMO_TIME_LIMIT = 4.0
"""Minutes of training ``unet train`` gives the synthetic demo by default: on a slow 2-core CPU
enough steps to find its cells well, while faster CPUs finish its epochs first
(benchmarks/README.md, "Quality per minute")."""

VOLUME_DEMO = {"tile_size": 60, "filters": 8, "depth": 2, "batch_size": 2,
               "synthetic_images": 8}
"""What a volume run takes instead of the 2D demo's values it was left at: a 3D U-Net of 8
filters and depth 2 on 60^3 tiles (20^3 out), 2 tiles per step, 8 synthetic 48^3 volumes
(0.08 s per step on 2 CPU cores; the 2D demo's 188 px tiles would be 6.6 million voxels)."""

SYNTHETIC_VOLUME_SIZE = 48
"""Side of the synthetic volumes (:func:`keras_unet.data.synthetic_volumes`) of ``ndim: 3``."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; the defaults are the 2-core CPU demo.

    The paper trains the full network (``filters=64, depth=4``) on 572x572 tiles, one tile per
    step, with SGD at momentum 0.99, the weighted cross-entropy and elastic deformation
    (``training/paper.yaml``). The demo keeps the unpadded network, the loss and the
    augmentation, but shrinks the network and the tiles, batches 4 tiles per step and uses Adam
    with a cosine-decayed learning rate, so that it converges in a few minutes on two CPU cores
    (``training/README.md`` says why, with measurements).

    Attributes:
        data: a folder (or file) of labelled images that :func:`keras_unet.data.load_samples`
            reads; ``None`` trains on :func:`keras_unet.data.synthetic_cells`.
        synthetic_images: number of synthetic images when ``data`` is ``None``.
        run_dir: where checkpoints, TensorBoard logs, the backup and the export go; ``None``
            makes ``runs/<timestamp>``.
        epochs: number of epochs.
        steps_per_epoch: training steps (global batches) per epoch.
        time_limit: minutes of training time. Training stops at the limit or after ``epochs``
            epochs, whichever comes first, and the epochs are shortened so that they spread
            over the limit (:mod:`keras_unet.training.time_budget` says what counts as training
            time). ``None``: no limit (the defaults for your data were chosen on real data by
            steps); ``unet train`` gives the synthetic demo on one worker
            :data:`DEMO_TIME_LIMIT` (:meth:`with_demo_budget`), so it fits a slow laptop CPU.
        batch_size: global batch: tiles per step summed over all replicas; it must divide evenly
            among them.
        tile_size: input tile size in pixels; must be a size the network takes (valid padding:
            see :func:`keras_unet.valid_input_size`). Left at 188, a 2D run takes
            :meth:`default_tile` of its depth and padding (:meth:`for_images`), a volume run
            :data:`VOLUME_DEMO`'s; checked once the run knows which it is.
        filters: channels of the first level of the U-Net.
        depth: number of 2x2 max-pooling steps.
        padding: ``"valid"`` (paper) or ``"same"``.
        dropout: dropout rate at the end of the contracting path (paper: 0.5).
        batch_norm: batch normalisation after every convolution (not in the paper).
        num_classes: classes the network predicts. Instance labels: 2 (background, cell) or 3
            (plus the border between touching cells); semantic labels: K >= 2, the class ids
            0..K-1 of the masks. ``None``: the ``init`` model's, else 2.
        labels: how masks are read: ``"instances"`` (cells: binary masks or instance ids; the
            paper's weight map), ``"semantic"`` (class indices; class-balanced weights), or
            ``None``: the ``init`` model's; else binary masks as instances, a mask with
            several non-zero values an error.
        ignore_label: mask value of unlabelled pixels (partial annotations): no loss, no score,
            never a tile of its own; ``None``: every pixel is labelled.
        class_names: comma-separated names of the classes (``"background,cytoplasm,nucleus"``),
            recorded in the model and shown by ``unet predict`` and ``unet evaluate``; ``None``:
            the ``init`` model's (for the same classes), else
            :func:`keras_unet.class_layout.default_class_names`.
        init: a trained ``.keras`` model to start from (fine-tuning): same geometry, its final
            1x1 convolution re-created when ``num_classes`` differs; its class count, names,
            label mode, depth, filters and padding are the defaults of this run, and a 2D
            model's default tile is :meth:`default_tile` of them
            (:func:`keras_unet.training.finetune.inherited_config`); ``None``: random weights.
        freeze_encoder: with ``init``, train only the expanding path (the contracting path and
            the bottleneck frozen) for the first third of the epochs (at least one), then all.
        patience: stop when the validation loss has not improved for this many epochs and
            keep the best epoch's weights; ``None``: run all epochs.
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"``.
        learning_rate: learning rate for the global batch (the initial one with ``cosine``).
        learning_rate_schedule: ``"constant"`` or ``"cosine"`` (decays to 0 over the run).
        momentum: SGD momentum (paper: 0.99).
        loss: ``"weighted_crossentropy"`` (paper), ``"dice"`` or ``"crossentropy_dice"``.
        elastic: elastic deformation and the other augmentations of training tiles (paper: on).
        mixed_precision: ``"auto"``, ``"off"``, ``"float16"`` or ``"bfloat16"``.
        strategy: ``"auto"``, ``"default"``, ``"mirrored"`` or ``"multi-worker"``.
        seed: seed of the weights, the train/validation split and the augmentation.
        val_fraction: fraction of the images held out for validation; with a single image,
            the fraction of it held out as a band (:func:`keras_unet.training.split_samples`);
            0 holds out nothing (no validation; ``best.keras`` is then the last epoch).
        ndim: 3 trains a 3D U-Net on volumes, 2 on images; ``None``: as the data are (masks
            that are stacks make volumes), the synthetic data 2D. A volume run takes the 3D
            demo's :data:`VOLUME_DEMO` values for the fields left at the 2D demo's.
        spacing: the voxel size ``"z,y,x"`` of volumes (any one unit), for the anisotropic
            network, the weight maps and the augmentation; ``None``: as the files say (ImageJ
            or OME metadata), else 1 on every axis.
        tile_depth: planes per volume tile; ``None``: the tile whose output spans about the
            same physical depth as ``tile_size``'s output spans in y and x.
        export: at the end, export the best model for TF-Serving into ``run_dir/export``;
            ``False`` keeps only the checkpoints (a fine-tuning round, a sweep), and
            ``unet export`` makes the SavedModel later.

    Example:
        >>> config = TrainConfig(epochs=3, optimizer="sgd")
        >>> config.epochs, config.optimizer, config.momentum
        (3, 'sgd', 0.99)
        >>> TrainConfig(epochs=0)
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: epochs must be >= 1, got 0.
    """

    data: str | None = None
    synthetic_images: int = 24
    run_dir: str | None = None
    epochs: int = 15
    steps_per_epoch: int = 120
    time_limit: float | None = None
    batch_size: int = 4
    tile_size: int = 188
    filters: int = 16
    depth: int = 3
    padding: str = "valid"
    dropout: float = 0.0
    batch_norm: bool = False
    num_classes: int | None = None
    labels: str | None = None
    ignore_label: int | None = None
    class_names: str | None = None
    init: str | None = None
    freeze_encoder: bool = False
    patience: int | None = None
    optimizer: str = "adam"
    learning_rate: float = 0.001
    learning_rate_schedule: str = "cosine"
    momentum: float = 0.99
    loss: str = "weighted_crossentropy"
    elastic: bool = True
    mixed_precision: str = "auto"
    strategy: str = "auto"
    seed: int = 0
    val_fraction: float = 0.2
    ndim: int | None = None
    spacing: str | None = None
    tile_depth: int | None = None
    export: bool = True

    _given = frozenset()  # not a field: the names a file, a mapping or the command line set

    def __post_init__(self) -> None:
        if isinstance(self.spacing, (list, tuple)):  # YAML: [2, 0.5, 0.5]
            object.__setattr__(self, "spacing", ",".join(str(v) for v in self.spacing))
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name,
                               _coerce(field.name, getattr(self, field.name), _hints()[field.name]))
        _check_ranges(self)

    @property
    def voxel_spacing(self) -> tuple[float, float, float] | None:
        """``spacing`` as three floats (``None`` when unset).

        Example:
            >>> TrainConfig(spacing="2,0.5,0.5").voxel_spacing
            (2.0, 0.5, 0.5)
        """
        if self.spacing is None:
            return None
        return parse_spacing(self.spacing, "spacing")

    def for_volumes(self) -> TrainConfig:
        """This config for a volume run: :data:`VOLUME_DEMO`'s values where this one has the
        2D demo's (a 3D U-Net on the 2D demo's 188 px tiles would not train on a CPU).

        Example:
            >>> volume = TrainConfig(filters=4).for_volumes()
            >>> volume.tile_size, volume.filters, volume.depth
            (60, 4, 2)
        """
        return self.replace_defaults(**VOLUME_DEMO)

    def for_images(self) -> TrainConfig:
        """This config for a 2D run: a tile left at the default becomes :meth:`default_tile` of
        the depth and padding, so ``depth: 4`` trains on 284 px tiles, not on the 4 px of output
        that 188 px tiles leave there. A volume's ``spacing`` or ``tile_depth`` is refused.

        Example:
            >>> TrainConfig(depth=4).for_images().tile_size, TrainConfig().for_images().tile_size
            (284, 188)
            >>> TrainConfig(depth=4, tile_size=572).for_images().tile_size
            572
        """
        _refuse_volume_settings(self, "this run's data are 2D images")
        return self.replace_defaults(tile_size=self.default_tile(self.depth, self.padding))

    def replace_defaults(self, **values: Any) -> TrainConfig:
        """A copy in which the fields still at :class:`TrainConfig`'s defaults take ``values``;
        fields the config or the command line set keep theirs, even where they equal the
        default (:meth:`given`, :meth:`from_mapping`).

        Example:
            >>> config = TrainConfig(filters=32).replace_defaults(filters=64, batch_size=8)
            >>> config.filters, config.batch_size
            (32, 8)
            >>> TrainConfig().given(depth=3).replace_defaults(depth=4).depth  # typed: kept
            3
        """
        defaults = TrainConfig()
        return self.replace(**{name: value for name, value in values.items()
                               if name not in self._given
                               and getattr(self, name) == getattr(defaults, name)})

    def given(self, **values: Any) -> TrainConfig:
        """A copy with ``values`` set as a user sets them (options typed, keys written): a model
        to fine-tune or the volume demo never replaces them, default-valued or not.

        Example:
            >>> TrainConfig().given(tile_size=188).replace_defaults(tile_size=284).tile_size
            188
        """
        config = self.replace(**values)
        object.__setattr__(config, "_given", self._given | frozenset(values))
        return config

    @staticmethod
    def default_tile(depth: int, padding: str) -> int:
        """The 2D tile whose output is the default tile's (100 px) for this depth and padding,
        so that a deeper network is not trained on the 4 px that 188 px tiles leave at depth 4.

        Example:
            >>> TrainConfig.default_tile(3, "valid"), TrainConfig.default_tile(4, "valid")
            (188, 284)
        """
        defaults = TrainConfig()
        return geometry.valid_input_size(
            geometry.output_size(defaults.tile_size, defaults.depth, defaults.padding),
            depth, padding)

    @property
    def classes(self) -> int:
        """``num_classes``, or 2 when unset.

        Example:
            >>> TrainConfig().classes, TrainConfig(num_classes=3).classes
            (2, 3)
        """
        return self.num_classes or 2

    @property
    def label_mode(self) -> str:
        """``labels``, or ``"instances"`` when unset (binary masks are cells).

        Example:
            >>> TrainConfig().label_mode, TrainConfig(data="d", labels="semantic").label_mode
            ('instances', 'semantic')
        """
        return self.labels or "instances"

    @property
    def frozen_epochs(self) -> int:
        """Epochs the encoder stays frozen with ``freeze_encoder``: a third, at least one.

        Example:
            >>> TrainConfig(epochs=10, init="m.keras", freeze_encoder=True).frozen_epochs
            3
        """
        return max(1, self.epochs // 3) if self.freeze_encoder else 0

    def with_demo_budget(self, workers: int = 1) -> TrainConfig:
        """The config with :data:`DEMO_TIME_LIMIT` when it is the synthetic demo (no ``data``,
        no ``time_limit``) on one worker (several workers cannot stop on their own clocks).

        Example:
            >>> TrainConfig().with_demo_budget().time_limit, TrainConfig(data="d").time_limit
            (4.0, None)
        """
        if self.data is None and self.time_limit is None and workers == 1:
            return self.replace(time_limit=DEMO_TIME_LIMIT)
        return self

    @property
    def time_limit_seconds(self) -> float | None:
        """``time_limit`` in seconds (None without a limit).

        Example:
            >>> TrainConfig(time_limit=2.5).time_limit_seconds, TrainConfig().time_limit_seconds
            (150.0, None)
        """
        return None if self.time_limit is None else self.time_limit * 60.0

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """Makes a config from a mapping (a parsed YAML file), rejecting unknown keys.

        Args:
            mapping: keys are :class:`TrainConfig` field names; missing keys keep the defaults.
            source: what the mapping came from, for error messages (e.g. a file name).

        Raises:
            ValueError: for an unknown key (naming the closest known one) or a bad value.

        Example:
            >>> TrainConfig.from_mapping({"epochs": 2}).epochs
            2
            >>> TrainConfig.from_mapping({"epoch": 2}, source="my.yaml")
            Traceback (most recent call last):
            ...
            keras_unet.errors.InputError: my.yaml: unknown key 'epoch'; did you mean 'epochs'?
        """
        if not isinstance(mapping, Mapping):
            raise InputError(f"{source}: expected a mapping of keys to values, got "
                             f"{type(mapping).__name__}.")
        names = [field.name for field in dataclasses.fields(cls)]
        for key in mapping:
            if key not in names:
                raise InputError(f"{source}: {_unknown_key_message(str(key), names)}")
        try:
            config = cls(**mapping)
        except ValueError as error:
            raise InputError(f"{source}: {error}") from None
        object.__setattr__(config, "_given", frozenset(key for key, value in mapping.items()
                                                      if value is not None))  # null: unset
        return config

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict of YAML-friendly values, in field order.

        Example:
            >>> TrainConfig().to_dict()["loss"]
            'weighted_crossentropy'
        """
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The config as YAML text that :func:`load_config` reads back to an equal config.

        Example:
            >>> text = TrainConfig(epochs=5).to_yaml()
            >>> "epochs: 5" in text.splitlines()
            True
        """
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some values changed (and checked again).

        Example:
            >>> TrainConfig().replace(filters=8).filters
            8
        """
        config = dataclasses.replace(self, **changes)
        object.__setattr__(config, "_given", self._given)
        return config


def parse_spacing(text, name: str = "--spacing") -> tuple[float, float, float]:
    """A voxel size ``"z,y,x"`` (or three numbers) as three positive floats, or a one-line error.

    Example:
        >>> parse_spacing("2,0.5,0.5")
        (2.0, 0.5, 0.5)
        >>> parse_spacing("1,0,1")
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: --spacing must be positive and finite per axis, got '1,0,1'.
    """
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        values = tuple(float(part) for part in parts)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be three numbers z,y,x, got {text!r}.") from None
    if len(values) != 3:
        raise InputError(f"{name} must be three numbers z,y,x, got {text!r}.")
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise InputError(f"{name} must be positive and finite per axis, got {text!r}.")
    return values


def load_config(path: str | Path) -> TrainConfig:
    """Reads a YAML config file; keys left out keep the defaults of :class:`TrainConfig`.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not YAML (or too large, not UTF-8, full of aliases:
            :func:`keras_unet.io.config_files.read_yaml`), not a mapping, or holds an unknown
            key or a bad value.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "run.yaml"
        >>> _ = path.write_text("epochs: 4\\nlearning_rate: 1e-3\\n")
        >>> config = load_config(path)
        >>> config.epochs, config.learning_rate
        (4, 0.001)
    """
    return TrainConfig.from_mapping(read_yaml(path) or {}, source=str(path))


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _unknown_key_message(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(names)}."
    return f"unknown key {shown(key)}; {hint}"


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Checks a value against its field type; numbers may come as YAML strings like "1e-3"."""
    kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in kinds:
            return None
        raise InputError(f"{name} must be set, got None.")
    kind = next(k for k in kinds if k is not type(None))
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(value, (str, Path)):
        return str(value)
    raise InputError(f"{name} must be {_KIND_NAMES[kind]}, got {shown(value)}.")


def _check_ranges(config: TrainConfig) -> None:
    at_least_one = ("synthetic_images", "epochs", "steps_per_epoch", "batch_size", "filters",
                    "depth")
    for name in at_least_one:
        if getattr(config, name) < 1:
            raise InputError(f"{name} must be >= 1, got {getattr(config, name)}.")
    _check_labels(config)
    choices = {"padding": geometry.PADDINGS, "optimizer": OPTIMIZERS,
               "learning_rate_schedule": SCHEDULES, "loss": LOSSES,
               "mixed_precision": MIXED_PRECISIONS, "strategy": STRATEGIES}
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise InputError(f"{name} must be one of {', '.join(allowed)}; got "
                             f"{shown(getattr(config, name))}.")
    if config.seed < 0:
        raise InputError(f"seed must be >= 0, got {config.seed}.")
    if not config.learning_rate > 0:
        raise InputError(f"learning_rate must be > 0, got {config.learning_rate}.")
    for name in ("momentum", "dropout"):
        if not 0.0 <= getattr(config, name) < 1.0:
            raise InputError(f"{name} must be in [0, 1), got {getattr(config, name)}.")
    if not 0.0 <= config.val_fraction < 1.0:
        raise InputError(f"val_fraction must be in [0, 1), got {config.val_fraction}.")
    if config.time_limit is not None and not (math.isfinite(config.time_limit)
                                              and config.time_limit > 0):
        raise InputError(f"time_limit must be a number of minutes > 0 (or unset: no limit), got "
                         f"{config.time_limit}.")
    if config.patience is not None and config.patience < 1:
        raise InputError(f"patience must be >= 1 (or unset: no early stopping), got "
                         f"{config.patience}.")
    if config.freeze_encoder and config.init is None:
        raise InputError("freeze_encoder needs init: a trained model whose contracting path to "
                         "keep.")
    if config.patience is not None and config.val_fraction == 0:
        raise InputError("patience needs validation images to watch; set val_fraction > 0.")
    if config.ndim is not None and config.ndim not in (2, 3):
        raise InputError(f"ndim must be 2 (images) or 3 (volumes), got {config.ndim}.")
    if config.spacing is not None:
        config.voxel_spacing  # noqa: B018 -- checks it
    if config.tile_depth is not None and config.tile_depth < 1:
        raise InputError(f"tile_depth must be >= 1, got {config.tile_depth}.")
    if config.ndim == 2:
        _refuse_volume_settings(config, "ndim is 2")


def _refuse_volume_settings(config: TrainConfig, why: str) -> None:
    """Refuses ``spacing`` and ``tile_depth`` for a 2D run, saying ``why`` it is one."""
    for name, what in (("spacing", "the voxel size of volumes (z,y,x)"),
                       ("tile_depth", "the planes of volume tiles")):
        if getattr(config, name) is not None:
            raise InputError(f"{name} is {what}; {why}.")


def check_tile_size(config: TrainConfig) -> None:
    """Refuses a 2D training tile the network cannot take, or one under the smallest tile it can
    tile with (one step of output): 188 px tiles at depth 4 would leave 4 px of output per tile,
    and the fixed validation tiles would cover every image 4 px at a time. Volume tiles are
    checked per axis by :func:`keras_unet.training.run.volume_layout`.

    Example:
        >>> check_tile_size(TrainConfig(depth=4, tile_size=284))
        >>> check_tile_size(TrainConfig(tile_size=92))  # 4 px of output
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: tile_size 92 is under the smallest tile of a depth-3 ...
    """
    smallest = geometry.valid_tile_size(1, config.depth, config.padding)
    if config.tile_size < smallest:  # checked first: the sizes that fit below it would not do
        step = geometry.grid(config.depth)
        better = TrainConfig.default_tile(config.depth, config.padding)
        raise InputError(
            f"tile_size {config.tile_size} is under the smallest tile of a depth-{config.depth} "
            f"network with {config.padding} padding, {smallest} px (one {step} px step of "
            f"output, which validation and prediction tiles advance by); use at least {smallest}"
            + (f", or {better} for the default's 100 px of output" if better != smallest else "")
            + ".")
    try:
        geometry.output_size(config.tile_size, config.depth, config.padding)
    except ValueError as error:
        raise InputError(f"tile_size: {error}") from None


def check_training_memory(config: TrainConfig, ndim: int = 2) -> None:
    """Refuses a network this machine cannot train before it is built: its weights with their
    gradients and Adam's two moments (16 bytes each), or a batch of training tiles (about three
    forward passes' activations, :func:`keras_unet.inference.plan.activation_bytes`), beyond its
    memory. A depth of 10 has 8 billion weights; its default tile is 13,308 px.

    Example:
        >>> check_training_memory(TrainConfig())
        >>> check_training_memory(TrainConfig(depth=10).for_images())
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: depth 10 with 16 filters has about 8.0 billion weights, ...
    """
    from keras_unet.inference.network import ModelGeometry
    from keras_unet.inference.plan import activation_bytes, physical_memory

    memory = physical_memory()
    weights = _weight_count(config.filters, config.depth, ndim)
    geom = ModelGeometry(config.depth, config.padding, 1, 2, (None,) * ndim, config.filters)
    tile = (config.tile_depth or config.tile_size,) * (ndim == 3) + (config.tile_size,) * 2
    tiles = 3 * config.batch_size * activation_bytes(geom, *tile)
    if 16 * weights > memory or tiles > memory:
        raise InputError(
            f"depth {config.depth} with {config.filters} filters has about "
            f"{weights / 1e9:.1f} billion weights, whose training needs about "
            f"{16 * weights / 2**30:.0f} GiB, and {config.batch_size} tiles of "
            f"{'x'.join(map(str, tile))} px about {tiles / 2**30:.0f} GiB; this machine has "
            f"{memory / 2**30:.0f} GiB: use a smaller depth, filters, tile_size or batch_size.")


def _weight_count(filters: int, depth: int, ndim: int) -> int:
    """The weights of a U-Net of one input channel (within 1% of Keras's count: the biases and
    the final layer left out); a 3D U-Net's with cubic kernels, an upper bound."""
    kernel, up = (9, 4) if ndim == 2 else (27, 8)
    channels = [filters * 2**level for level in range(depth + 1)]
    count = kernel * (channels[0] + channels[0] ** 2)
    for level in range(1, depth + 1):  # the contracting path and the bottleneck
        count += kernel * (channels[level - 1] * channels[level] + channels[level] ** 2)
    for level in range(depth):  # the expanding path: an up-convolution and two convolutions
        count += up * channels[level + 1] * channels[level] + kernel * 3 * channels[level] ** 2
    return count


def _check_labels(config: TrainConfig) -> None:
    """The label mode, the class count, the ignore value and the class names agree."""
    if config.labels is not None and config.labels not in LABEL_MODES:
        raise InputError(f"labels must be one of {', '.join(LABEL_MODES)}; got "
                         f"{shown(config.labels)}.")
    if config.labels == "semantic":
        if config.num_classes is not None and config.num_classes < 2:
            raise InputError(f"num_classes must be >= 2, got {config.num_classes}.")
        if config.data is None:
            raise InputError("labels semantic needs data: the synthetic cells are instances.")
    elif config.num_classes is None and config.init is not None:
        pass  # the init model's, checked once it is read
    elif config.classes not in NUM_CLASSES:
        raise InputError(f"num_classes must be 2 (background, cell) or 3 (background, cell, "
                         f"border) for instance labels, got {config.num_classes}; for "
                         "masks of class indices set labels: semantic.")
    if config.ignore_label is not None:
        if config.ignore_label < 0:
            raise InputError(f"ignore_label must be a mask value >= 0, got {config.ignore_label}.")
        if config.labels == "semantic" and config.ignore_label < config.classes:
            raise InputError(f"ignore_label {config.ignore_label} is also a class id "
                             f"(0..{config.classes - 1}); use a value outside the classes, "
                             "e.g. 255.")
        if config.labels != "semantic" and config.ignore_label == 0:
            raise InputError("ignore_label 0 is the background of instance masks; use another "
                             "value, e.g. 255 for masks whose cells are ids below it.")
    if config.num_classes is not None or config.init is None:
        parse_class_names(config.class_names, config.classes, "class_names")
