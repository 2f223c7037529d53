"""``unet evaluate``: score a trained model on labelled images.

    unet evaluate --model unet.keras --data path/to/dataset [--report runs/evaluation] [--tta]

Loads the samples with :func:`keras_unet.data.load_samples` (images/ + masks/, an ISBI 2012 tif
pair or a Cell Tracking Challenge folder), predicts them, turns the probabilities into cells and
prints, per image and for the whole dataset: the object counts, F1 and AP (the Data Science
Bowl's, as StarDist computes it) at IoU 0.5 and 0.75, AP averaged over IoU 0.5:0.95, panoptic
quality at 0.5, the Cell Tracking Challenge's SEG, the ISBI 2012 Rand error (of the cells, and
the challenge's ranking form: the best over thresholds 0, 0.1, ..., 1 of the cell probability),
the foreground-restricted variation of information, the warping error and pixel IoU and Dice.
Below the images, the ``mean`` row averages every column over the images and the ``dataset`` row
pools them as the challenges do: object counts summed over the images before taking ratios, SEG
over all reference objects, one probability threshold for the whole set. The table is also saved
as ``evaluation.csv`` and ``evaluation.json`` in the ``--report`` folder. The cells are those
``unet predict --instances`` writes: by default with the settings the model carries (what ``unet
train`` chose), else from ``--instance-method`` and ``--min-size`` (``--instance-method
membranes`` for EM, where the background class is the membrane).

A 3D U-Net is scored on volumes (``images/`` + ``masks/`` of TIFF stacks or zarr, Cell Tracking
Challenge 3D frames): every measure defined in 3D, the warping error (2D) left empty.

With ``--labels semantic`` (the default for a semantic model) the masks hold class indices and the
table holds the IoU and Dice of every class (named as the model names them, or by ``--class-names``)
and their mean over the classes other than background. ``--ignore-label N`` leaves pixels of mask
value N out of every measure (partial annotations).
"""

from __future__ import annotations

import argparse
import os
from functools import partial
from pathlib import Path

from keras_unet.cli import help_text, prepare_once
from keras_unet.cli.arguments import (
    add_instance_arguments,
    add_model_arguments,
    cell_settings,
    check_instance_arguments,
    check_model_arguments,
    check_volume_arguments,
    print_notes,
)
from keras_unet.errors import InputError
from keras_unet.io.paths import existing_input, refuse_overlap

DEFAULT_REPORT = Path("runs") / "evaluation"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers ``unet evaluate``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> args = add_parser(parser.add_subparsers()).parse_args(["--model", "m", "--data", "d"])
        >>> args.report
        PosixPath('runs/evaluation')
    """
    parser = subparsers.add_parser(
        "evaluate", help="score a model on labelled images (F1, AP, PQ, SEG, Rand, VI, warping, "
                         "IoU)",
        description=help_text(__doc__)[0], formatter_class=argparse.RawTextHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--data", required=True, type=Path, help="labelled dataset to score on")
    parser.add_argument("--labels", choices=("instances", "semantic"), default=None,
                        help="masks hold cells (binary or instance ids) or class indices\n"
                             "(default: the model's; binary masks are cells)")
    parser.add_argument("--ignore-label", type=int, default=None,
                        help="mask value of unlabelled pixels, left out of every measure")
    parser.add_argument("--class-names", default=None,
                        help="comma-separated class names for the table (default: the model's)")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT,
                        help="folder for evaluation.csv and evaluation.json "
                             "(default: %(default)s)")
    add_instance_arguments(parser, "scoring")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    parser.set_defaults(run=run, prepare=prepare)
    return parser


def prepare(args: argparse.Namespace) -> None:
    """Checks the options, ``--data``, ``--model`` and the report's files before TensorFlow
    starts, so a mistake costs no time.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> _ = add_parser(parser.add_subparsers())
        >>> prepare(parser.parse_args(["evaluate", "--model", "m.keras", "--data", "no-such"]))
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputNotFoundError: --data 'no-such' does not exist.
    """
    from keras_unet.evaluation.report import report_paths

    check_instance_arguments(args)
    existing_input(args.data, "--data")
    check_model_arguments(args)
    refuse_overlap(args.report, {"--data": args.data, "--model": args.model}, "--report")
    report_paths(args.report, overwrite=args.overwrite)


def run(args: argparse.Namespace) -> int:
    """Runs ``unet evaluate``; prints the table and saves the report.

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> from PIL import Image
        >>> from keras_unet import build_unet
        >>> folder = Path(tempfile.mkdtemp())
        >>> build_unet((None, None, 1), 2, filters=4, depth=2).save(folder / "unet.keras")
        >>> (folder / "data" / "images").mkdir(parents=True)
        >>> (folder / "data" / "masks").mkdir()
        >>> mask = np.zeros((20, 30), "uint8"); mask[5:15, 5:12] = 255
        >>> Image.fromarray(mask).save(folder / "data" / "masks" / "a.png")
        >>> Image.fromarray(mask // 2).save(folder / "data" / "images" / "a.png")
        >>> parser = argparse.ArgumentParser()
        >>> _ = add_parser(parser.add_subparsers())
        >>> run(parser.parse_args(["evaluate", "--model", str(folder / "unet.keras"), "--data",
        ...                        str(folder / "data"), "--report", str(folder / "report")]))
        <BLANKLINE>
        ...
        mean ...
        dataset ...
        mean row: ...
        wrote /tmp/.../report/evaluation.csv
        wrote /tmp/.../report/evaluation.json
        0
    """
    prepare_once(args)
    from keras_unet.class_layout import parse_class_names
    from keras_unet.data import load_samples
    from keras_unet.evaluation import evaluate_classes, evaluate_probabilities
    from keras_unet.inference.loading import load_network
    from keras_unet.instances.labels import instance_labels

    network = load_network(args.model)
    network.check_options(tile_size=args.tile_size, batch_size=args.batch_size)
    check_volume_arguments(args, network)
    print_notes("evaluate", network.notes)
    layout = network.layout
    names = layout and layout.class_names
    if args.class_names is not None:
        if layout is None:
            raise InputError("--class-names needs a model that says how many classes it has.")
        names = parse_class_names(args.class_names, layout.num_classes, "--class-names")
    labels = args.labels or (layout.labels if layout is not None else None)
    samples = load_samples(args.data, labels, ignore_label=args.ignore_label,
                           num_classes=layout.num_classes if layout and labels == "semantic"
                           else None, ndim=network.ndim, spacing=args.voxel_spacing)
    kinds = {sample.ndim for sample in samples}
    if kinds != {network.ndim}:
        kind = "volumes" if 3 in kinds else "2D images"
        model = "2D U-Net" if network.ndim == 2 else "3D U-Net"
        raise InputError(f"--data {str(args.data)!r} holds {kind}, but --model "
                         f"{str(args.model)!r} is a {model}.")
    spacing = args.voxel_spacing or next((s.spacing for s in samples if s.spacing), None) or (
        network.geometry.spacing if network.geometry is not None else None)

    def predict(image):
        return network.predict(image, tta=args.tta, tile_size=args.tile_size,
                               batch_size=args.batch_size)

    if labels == "semantic":
        report = evaluate_classes(predict, samples, names)
    else:
        cells = cell_settings(args, network.cells)
        print(f"unet evaluate: cells: {cells.describe()}")
        volume = {"spacing": spacing} if network.ndim == 3 else {}
        report = evaluate_probabilities(predict, samples,
                                        to_labels=partial(instance_labels, **cells.options,
                                                          **volume))
    print(report.table())
    for path in report.save(args.report, overwrite=args.overwrite):
        print(f"wrote {os.fspath(path)}")
    return 0
