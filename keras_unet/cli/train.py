"""``unet train``: train a U-Net on your data, or on synthetic cells without ``--data``.

    unet train                                   # the CPU demo on synthetic cells
    unet train --config training/paper.yaml --data isbi2012/ --run-dir runs/isbi
    unet train --data tissue/ --labels semantic --num-classes 4 --ignore-label 255
    unet train --data more_cells/ --init runs/isbi/checkpoints/best.keras --patience 3
    unet train --time-limit 5                    # the demo in 5 minutes of training
    unet train --ndim 3                          # a 3D U-Net on synthetic nuclei
    unet train --data stacks/ --spacing 2,0.5,0.5 # volumes: images/ + masks/ of TIFF stacks

Options given on the command line override the ``--config`` file, which overrides the defaults
(``training/cpu_demo.yaml``). Run the same command again after an interruption to resume.
With ``--time-limit`` the epochs are shortened to spread over the limit and training stops at
it (or after the epochs, whichever comes first); a resumed run trains for what is left.
On cells (not semantic classes), the instance method and smallest-cell cut-off that give the
best object F1 on the validation images are recorded in the model, so ``unet predict`` and
``unet evaluate`` use them; ``--init`` starts from a model's weights, classes and cell settings.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from keras_unet.cli import as_option, help_text, prepare_once
from keras_unet.errors import InputError
from keras_unet.training.config import TrainConfig

OPTIONS = (
    # (flag, type, choices, help)
    ("--data", str, None, "folder of labelled images (default: synthetic cells)"),
    ("--run-dir", str, None, "output folder (default: runs/<timestamp>)"),
    ("--epochs", int, None, "number of epochs"),
    ("--steps-per-epoch", int, None, "training steps per epoch"),
    # A string, checked by TrainConfig, so that "abc" or "nan" is one line naming the option.
    ("--time-limit", str, None, "minutes of training (validation and export not counted): "
     "epochs are shortened to spread over it; stops at it or after the epochs, whichever "
     "comes first (default: 4 for the synthetic demo on one worker, else no limit)"),
    ("--batch-size", int, None, "global batch: tiles per step over all replicas"),
    ("--tile-size", int, None, "input tile size (a size the network takes)"),
    ("--filters", int, None, "channels of the first level"),
    ("--depth", int, None, "number of pooling steps"),
    ("--padding", str, ("valid", "same"), "valid (paper) or same"),
    ("--labels", str, ("instances", "semantic"),
     "masks hold cells (binary or instance ids) or class indices 0..K-1 (default: binary masks "
     "are instances, other masks need this)"),
    ("--num-classes", int, None, "classes: 2 or 3 (with border) for instances, K for semantic "
     "(default: the --init model's, else 2)"),
    ("--ignore-label", int, None, "mask value of unlabelled pixels (no loss, no score)"),
    ("--class-names", str, None, "comma-separated class names, recorded in the model"),
    ("--init", str, None, "start from this trained .keras model (fine-tuning)"),
    ("--patience", int, None, "stop after this many epochs without a better validation loss, "
     "keeping the best (default: off)"),
    ("--optimizer", str, ("sgd", "adam"), "sgd (paper, momentum 0.99) or adam"),
    ("--learning-rate", float, None, "learning rate for the global batch"),
    ("--mixed-precision", str, ("auto", "off", "float16", "bfloat16"), "compute precision"),
    ("--strategy", str, ("auto", "default", "mirrored", "multi-worker"),
     "tf.distribute strategy"),
    ("--seed", int, None, "random seed"),
    ("--val-fraction", float, None, "fraction of images held out for validation"),
    ("--ndim", int, (2, 3), "3: a 3D U-Net on volumes (without --data: synthetic nuclei); "
     "default: as the data are (masks that are stacks are volumes)"),
    ("--spacing", str, None, "voxel size z,y,x of volumes (default: from the files' ImageJ or "
     "OME metadata, else 1,1,1); chooses the anisotropic network"),
    ("--tile-depth", int, None, "planes per volume tile (default: as deep, physically, as "
     "--tile-size is wide)"),
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers ``unet train``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> train = add_parser(parser.add_subparsers())
        >>> args = train.parse_args(["--epochs", "3", "--padding", "same"])
        >>> args.epochs, args.padding, args.filters
        (3, 'same', None)
    """
    parser = subparsers.add_parser(
        "train", help="train a U-Net (default: the CPU demo on synthetic cells)",
        description=help_text(__doc__)[0], epilog=help_text(__doc__)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", default=None,
                        help="YAML config file (see training/; default: the CPU demo)")
    defaults = TrainConfig().to_dict()
    for flag, kind, choices, text in OPTIONS:
        default = defaults[flag[2:].replace("-", "_")]
        shown = text if default is None else f"{text} (default: {default})"
        parser.add_argument(flag, type=kind, choices=choices, default=None, help=shown)
    parser.add_argument("--freeze-encoder", action="store_true", default=None,
                        help="with --init: train only the expanding path for the first third "
                             "of the epochs (at least one)")
    parser.add_argument("--no-export", dest="export", action="store_false", default=None,
                        help="keep only the checkpoints: no SavedModel in the run directory "
                             "(unet export makes one later)")
    parser.add_argument("--overwrite", action="store_true",
                        help="move an earlier, different run in --run-dir aside and start anew")
    parser.set_defaults(run=run, prepare=prepare, first=first)
    return parser


def overrides(args: argparse.Namespace) -> dict:
    """The config values given on the command line (options left out are not included).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> args = add_parser(parser.add_subparsers()).parse_args(["--learning-rate", "0.1"])
        >>> overrides(args)
        {'learning_rate': 0.1}
    """
    names = [flag[2:].replace("-", "_") for flag, *_ in OPTIONS] + ["freeze_encoder", "export"]
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def resolved_config(args: argparse.Namespace) -> TrainConfig:
    """The config the command describes: ``--config`` (else the defaults) and the options; the
    synthetic demo gets its time limit (:meth:`keras_unet.training.TrainConfig.with_demo_budget`).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> args = add_parser(parser.add_subparsers()).parse_args(["--epochs", "2"])
        >>> resolved_config(args).epochs
        2
    """
    from keras_unet.training import load_config
    from keras_unet.training.cluster import cluster_from_env

    config = load_config(args.config) if args.config else TrainConfig()
    given = overrides(args)
    try:
        config = config.given(**given)
    except ValueError as error:
        raise InputError(f"command line: {as_option(str(error), given)}") from None
    return config.with_demo_budget(cluster_from_env().num_tasks)


def prepare(args: argparse.Namespace) -> None:
    """Resolves and checks the run before TensorFlow starts, so a mistake costs no time, and
    chooses the CPU kernels TensorFlow will train with (:mod:`keras_unet.training.cpu_kernels`).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> args = add_parser(parser.add_subparsers()).parse_args(["--epochs", "0"])
        >>> prepare(args)
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: command line: --epochs must be >= 1, got 0.
    """
    from keras_unet.training.cluster import check_for_cluster, cluster_from_env
    from keras_unet.training.cpu_kernels import choose_training_kernels

    args.resolved = resolved_config(args)
    check_for_cluster(args.resolved, cluster_from_env())
    config = args.resolved  # an --init model's width is unknown until TensorFlow reads it
    args.cpu_kernels = choose_training_kernels(config.filters if config.init is None else None,
                                               config.mixed_precision)


def first(args: argparse.Namespace) -> None:
    """Creates the tf.distribute strategy before anything else touches TensorFlow's runtime:
    collective operations of several workers must be configured at program startup."""
    from keras_unet.training.cluster import cluster_from_env
    from keras_unet.training.distribution import choose_strategy

    choose_strategy(args.resolved.strategy, cluster_from_env())


def run(args: argparse.Namespace) -> int:
    """Runs ``unet train``; returns 1 if the loss diverged, else 0.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> _ = add_parser(parser.add_subparsers())
        >>> run(parser.parse_args(["train", "--data", "no-such-folder", "--epochs", "1"]))
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputNotFoundError: dataset 'no-such-folder' does not exist.
    """
    from keras_unet.training import train

    prepare_once(args)
    try:
        result = train(args.resolved, overwrite=args.overwrite)
    except FloatingPointError as error:
        print(f"unet train: {error}", file=sys.stderr)
        return 1
    except InputError as error:  # a value checked against the data (a volume's tile depth)
        message = as_option(str(error), overrides(args))
        if message == str(error):
            raise
        raise InputError(message) from None
    if not result.chief:  # the chief reports
        return 0
    final = result.final
    best_model = shlex.quote(str(result.run.checkpoints / "best.keras"))
    exported = ", exported" if result.export else ""
    print()
    print(f"Run directory:   {result.run.path}")
    print(f"Config:          {result.run.path / 'config.yaml'}")
    print(f"TensorBoard:     tensorboard --logdir {result.run.logs}")
    print(f"Checkpoints:     {result.run.checkpoints / 'best.keras'} (best), last.keras (last)")
    print(f"Served model:    {result.export}" if result.export else
          f"Served model:    none (not exported; unet export --model {best_model} --out "
          f"{shlex.quote(str(result.run.export))} makes it)")
    print(f"Stopped:         {result.stopped}")
    if args.cpu_kernels == "oneDNN":
        print(f"CPU kernels:     oneDNN, turned on for this {result.config.filters}-filter network "
              f"(TensorFlow's default on this CPU is Eigen; TF_ENABLE_ONEDNN_OPTS=0 keeps it)")
    elif args.cpu_kernels == "Eigen":
        print("CPU kernels:     Eigen, for bfloat16 (TensorFlow's default oneDNN kernels have no "
              "bfloat16 convolutions on this CPU; Eigen emulates them, many times slower than "
              "the float32 that --mixed-precision auto trains in here)")
    nan = float("nan")
    if final:
        print(f"Last epoch:      {_validation_scores(final)}, "
              f"{final.get('tiles_per_second', nan):.1f} tiles/s")
    if result.best and result.best["value"] is not None:
        logs = result.best["logs"]
        print(f"Best epoch:      {result.best['epoch']} of {result.config.epochs} (lowest "
              f"validation loss, {result.best['value']:.3f}): {_validation_scores(logs)} "
              f"(best.keras{exported})")
    elif result.best:
        print(f"Best epoch:      the last, {result.best['epoch']} (no validation images; "
              f"best.keras = last.keras{exported})")
    if result.cells is not None:
        print(f"Cells:           {result.cells.describe()}, recorded in best.keras"
              f"{' and the export' if result.export else ''}{_cell_scores(result.cell_scores)}")
    if result.validation is None:
        print(f"Predict:         unet predict --model {best_model} --input IMAGES --output "
              f"{shlex.quote(str(result.run.path / 'predictions'))} (no images were held out)")
        return 0
    print(f"Predict:         unet predict --model {best_model} --input "
          f"{shlex.quote(str(result.validation / 'images'))} --output "
          f"{shlex.quote(str(result.run.path / 'predictions'))}"
          f"{'' if result.config.ndim == 3 else ' --overlays'}")  # no overlays of volumes
    print(f"Evaluate:        unet evaluate --model {best_model} --data "
          f"{shlex.quote(str(result.validation))} --report "
          f"{shlex.quote(str(result.run.path / 'evaluation'))}{_label_options(result.config)}")
    return 0


def _label_options(config: TrainConfig) -> str:
    """The ``unet evaluate`` options that read the validation masks as training read them.

    Example:
        >>> _label_options(TrainConfig(data="d", labels="semantic", num_classes=4, ignore_label=9))
        ' --labels semantic --ignore-label 9'
        >>> _label_options(TrainConfig())
        ' --labels instances'
    """
    options = f" --labels {config.label_mode}"
    if config.ignore_label is not None:
        options += f" --ignore-label {config.ignore_label}"
    return options


def _cell_scores(scores: dict[tuple[str, int], float]) -> str:
    """The best object F1 of each instance method tried, for the summary.

    Example:
        >>> _cell_scores({("auto", 0): 0.5, ("auto", 10): 0.9, ("membranes", 0): 0.2})
        ' (object F1 on the validation images: auto 0.900 at 10 px, membranes 0.200 at 0 px)'
    """
    if not scores:
        return ""
    best = {}
    for (method, size), value in scores.items():
        if method not in best or value > best[method][1]:
            best[method] = (size, value)
    return (" (object F1 on the validation images: "
            + ", ".join(f"{method} {value:.3f} at {size} px"
                        for method, (size, value) in best.items()) + ")")


def _validation_scores(logs: dict) -> str:
    """An epoch's validation IoU and Dice, and its object F1 on cells (semantic classes have none).

    Example:
        >>> _validation_scores({"val_iou": 0.8, "val_dice": 0.9, "val_object_f1": 0.95})
        'validation IoU 0.800, Dice 0.900, object F1 0.950'
        >>> _validation_scores({"val_iou": 0.8, "val_dice": 0.9})
        'validation IoU 0.800, Dice 0.900'
        >>> _validation_scores({"loss": 0.25})
        'loss 0.250 (no validation images)'
    """
    nan = float("nan")
    if "val_iou" not in logs:
        return f"loss {logs.get('loss', nan):.3f} (no validation images)"
    scores = f"validation IoU {logs.get('val_iou', nan):.3f}, Dice {logs.get('val_dice', nan):.3f}"
    if "val_object_f1" in logs:
        scores += f", object F1 {logs['val_object_f1']:.3f}"
    return scores
