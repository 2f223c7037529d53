"""The options ``unet predict`` and ``unet evaluate`` share: the model, and how cells are made.

One definition for both commands, so a model is scored with the same cells it predicts. The
cell options default to what the model carries (the settings ``unet train`` chose, see
:mod:`keras_unet.instances.settings`); given, they win.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keras_unet.errors import InputError
from keras_unet.geometry import PREDICTION_BATCH
from keras_unet.instances.settings import METHODS, MIN_SIZE, CellSettings
from keras_unet.io.paths import existing_input


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--tta``, ``--tile-size`` and ``--batch-size``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_model_arguments(parser)
        >>> parser.parse_args(["--model", "m.keras", "--tta"]).tta
        True
    """
    parser.add_argument("--model", required=True, type=Path,
                        help="a .keras file, a SavedModel folder, an .onnx file or a\n"
                             "bioimage.io .zip written by unet export")
    parser.add_argument("--tta", action="store_true",
                        help="average the 8 flips/rotations of every image (8x slower)")
    parser.add_argument("--tile-size", type=int, default=None,
                        help="model input tile size (.keras and .onnx models; default: chosen\n"
                             "per image)")
    parser.add_argument("--batch-size", type=int, default=PREDICTION_BATCH,
                        help="tiles per model call (default: %(default)s)")
    add_volume_arguments(parser)


def add_volume_arguments(parser: argparse.ArgumentParser, spacing: bool = True) -> None:
    """``--ndim`` (checked against the model) and ``--spacing`` (the voxel size of volumes).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_volume_arguments(parser)
        >>> parser.parse_args(["--ndim", "3", "--spacing", "2,0.5,0.5"]).ndim
        3
    """
    parser.add_argument("--ndim", type=int, choices=(2, 3), default=None,
                        help="3: the inputs are volumes (TIFF stacks, OME-Zarr with a z\n"
                             "axis) for a 3D U-Net; checked against the model (default: the\n"
                             "model's)")
    if spacing:
        parser.add_argument("--spacing", default=None, metavar="Z,Y,X",
                            help="voxel size of volumes, for the cells' distances and the\n"
                                 "outputs (default: the files' ImageJ/OME metadata, else the\n"
                                 "model's)")


def check_volume_arguments(args: argparse.Namespace, network) -> None:
    """Refuses an ``--ndim`` other than the model's and a bad ``--spacing``, naming them; sets
    ``args.voxel_spacing`` (``None`` when not given).

    Example:
        >>> from types import SimpleNamespace
        >>> check_volume_arguments(argparse.Namespace(ndim=3, spacing=None, model="m.keras"),
        ...                        SimpleNamespace(ndim=2))
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: --ndim 3, but --model 'm.keras' is a 2D U-Net (images).
    """
    ndim = getattr(network, "ndim", 2)
    if args.ndim is not None and args.ndim != ndim:
        kind = "2D U-Net (images)" if ndim == 2 else "3D U-Net (volumes)"
        raise InputError(f"--ndim {args.ndim}, but --model {str(args.model)!r} is a {kind}.")
    args.voxel_spacing = None
    if getattr(args, "spacing", None) is not None:
        from keras_unet.training.config import parse_spacing

        if ndim == 2:
            raise InputError(f"--spacing is the voxel size of volumes; --model "
                             f"{str(args.model)!r} is a 2D U-Net.")
        args.voxel_spacing = parse_spacing(args.spacing)


def add_instance_arguments(parser: argparse.ArgumentParser, purpose: str) -> None:
    """Adds ``--instance-method`` and ``--min-size``; ``purpose`` says what the cells are for.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_instance_arguments(parser, "scoring")
        >>> parser.parse_args(["--instance-method", "membranes"]).instance_method
        'membranes'
    """
    parser.add_argument("--instance-method", choices=METHODS, default=None,
                        help=f"how cells are found for {purpose}: 'auto' is 'watershed'\n"
                             "from the cell interiors for 3-class models, connected\n"
                             "'components' for 2-class ones; 'membranes' for cells that\n"
                             "tile the image with membranes between them, as in EM\n"
                             "(default: what the model carries, else auto)")
    parser.add_argument("--min-size", type=int, default=None,
                        help="drop cells under this many pixels (default: what the model\n"
                             f"carries, else {MIN_SIZE})")


def check_instance_arguments(args: argparse.Namespace) -> None:
    """Refuses a negative ``--min-size`` before any work.

    Example:
        >>> check_instance_arguments(argparse.Namespace(min_size=-1))
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: --min-size must be >= 0 (pixels), got -1.
    """
    if args.min_size is not None and args.min_size < 0:
        raise InputError(f"--min-size must be >= 0 (pixels), got {args.min_size}.")


def check_model_arguments(args: argparse.Namespace) -> None:
    """Refuses a ``--model`` that is not there and a ``--tile-size`` or ``--batch-size`` under 1
    before TensorFlow starts (what the model takes is checked once it is loaded).

    Example:
        >>> check_model_arguments(argparse.Namespace(model=Path("."), tile_size=0, batch_size=4))
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: --tile-size must be a positive number of pixels, got 0.
    """
    existing_input(args.model, "--model")
    if args.tile_size is not None and args.tile_size < 1:
        raise InputError(f"--tile-size must be a positive number of pixels, got {args.tile_size}.")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be a positive integer, got {args.batch_size}.")


def cell_settings(args: argparse.Namespace, carried: CellSettings) -> CellSettings:
    """The model's settings with the options given on the command line in their place.

    Example:
        >>> args = argparse.Namespace(instance_method=None, min_size=30)
        >>> cell_settings(args, CellSettings()).describe()
        'method auto, min_size 30 (from the command line)'
    """
    return carried.replaced(method=args.instance_method, min_size=args.min_size)


def print_notes(command: str, notes) -> None:
    """Prints a loaded model's notes, one line each, on stderr.

    Example:
        >>> print_notes("predict", ["a note"])
    """
    for note in notes:
        print(f"unet {command}: note: {note}", file=sys.stderr)
