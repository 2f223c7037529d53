"""``unet export``: write a trained model for TF-Serving, ONNX runtimes or the BioImage Model Zoo.

    unet export --model unet.keras --out models/unet [--version N] [--tile-size T]
                [--max-image-pixels P] [--no-warmup]
    unet export --format onnx --model unet.keras --out unet.onnx [--opset 17] [--overwrite]
    unet export --format bioimageio --model unet.keras --out zoo/ [--name NAME]
                [--author NAME ...] [--license SPDX] [--description TEXT]
                [--training-config config.yaml] [--sample-image FILE] [--overwrite]

savedmodel (the default) writes models/unet/<N>/ (next free number by default), tiling inside
the graph; an existing version is never overwritten. Point TF-Serving at models/unet (see
serving/README.md). onnx writes the bare network (the consumer tiles; keras_unet.predict_tiled
does with keras_unet.serving.OnnxNetwork). bioimageio writes zoo/<NAME>.zip (or the .zip that
--out names), validated by bioimageio.spec, for deepImageJ (Fiji), ilastik, napari and QuPath.
A 3D U-Net exports alike: the SavedModel tiles volumes in its graph, the ONNX input is (batch,
z, y, x, c), and the package declares the z axis with its valid sizes (--sample-image: a TIFF
stack). Every file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keras_unet.cli import as_option, help_text, prepare_once
from keras_unet.errors import InputError, InputNotFoundError
from keras_unet.io.atomic import refuse_existing
from keras_unet.io.paths import existing_input, refuse_overlap
from keras_unet.serving.targets import (
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_PACKAGE_NAME,
    check_export_target,
    check_package_target,
)

FORMATS = ("savedmodel", "onnx", "bioimageio")
SAVEDMODEL_OPTIONS = {"version": "--version", "tile_size": "--tile-size",
                      "max_image_pixels": "--max-image-pixels"}
ONNX_OPTIONS = {"opset": "--opset"}
PACKAGE_OPTIONS = {"name": "--name", "authors": "--author", "license": "--license",
                   "description": "--description", "training_config": "--training-config",
                   "sample_image": "--sample-image"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers ``unet export``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> sub = add_parser(parser.add_subparsers())
        >>> sub.parse_args(["--model", "m.keras", "--out", "base", "--version", "3"]).version
        3
        >>> sub.parse_args(["--model", "m.keras", "--out", "m.onnx", "--format", "onnx"]).format
        'onnx'
    """
    parser = subparsers.add_parser(
        "export", help="write a SavedModel for TF-Serving, an ONNX file or a bioimage.io package",
        description=help_text(__doc__)[0], epilog=help_text(__doc__)[1],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--model", required=True, type=Path, help="the trained .keras file")
    parser.add_argument("--out", required=True, type=Path,
                        help="savedmodel: export base folder that TF-Serving watches (versions "
                             "go inside);\nonnx: the .onnx file; bioimageio: the package .zip, or "
                             "a folder for <NAME>.zip")
    parser.add_argument("--format", choices=FORMATS, default="savedmodel",
                        help="what to write (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="onnx, bioimageio: replace an existing file or package of that "
                             "name (a SavedModel version is never replaced)")
    parser.add_argument("--ndim", type=int, choices=(2, 3), default=None,
                        help="3: the model is a 3D U-Net (volumes); checked against the model "
                             "(default: the model's)")
    served = parser.add_argument_group("savedmodel")
    served.add_argument("--version", type=int, default=None,
                        help="version number (default: one more than the largest present)")
    served.add_argument("--tile-size", type=int, default=None,
                        help="model input tile used inside the graph (default: 512 px output)")
    served.add_argument("--max-image-pixels", type=int, default=None,
                        help="largest height*width a request may send (default: "
                             "keras_unet.serving.DEFAULT_MAX_IMAGE_PIXELS, 64 Mpx)")
    served.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="do not write assets.extra/tf_serving_warmup_requests (default: "
                             "written)")
    portable = parser.add_argument_group("onnx and bioimageio")
    portable.add_argument("--opset", type=int, default=None,
                          help="ONNX opset (default: keras_unet.serving.onnx_export."
                               "DEFAULT_OPSET, 17)")
    package = parser.add_argument_group("bioimageio")
    package.add_argument("--name", default=None,
                         help="model name: letters, digits, spaces and _+-() (default: "
                              "'keras_unet U-Net')")
    package.add_argument("--author", dest="authors", action="append", default=None,
                         help="an author's name; repeat for several (default: 'keras_unet "
                              "user')")
    package.add_argument("--license", default=None,
                         help="SPDX licence identifier (default: CC-BY-4.0)")
    package.add_argument("--description", default=None,
                         help="one paragraph (default: written from the model's geometry and "
                              "classes)")
    package.add_argument("--training-config", type=Path, default=None,
                         help="the training config.yaml to include (default: RUN_DIR/"
                              "config.yaml when\n--model is RUN_DIR/checkpoints/*.keras)")
    package.add_argument("--sample-image", type=Path, default=None,
                         help="image for the test tensors and the cover (default: synthetic "
                              "cells)")
    parser.set_defaults(prepare=prepare, run=run)
    return parser


def prepare(args: argparse.Namespace) -> None:
    """Checks the options, ``--model`` and where the export goes before TensorFlow starts, so a
    mistake costs no time (the ONNX opset and a package's name, authors and licence are
    checked by their converters, after it).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> _ = add_parser(parser.add_subparsers())
        >>> prepare(parser.parse_args(["export", "--model", "m.keras", "--out", "m.onnx",
        ...                            "--format", "onnx", "--version", "2"]))
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: --version does not apply to --format onnx.
    """
    _refuse_options_of_other_formats(args)
    if args.format == "savedmodel":
        suffix = args.out.suffix.lower()
        if suffix in (".onnx", ".zip"):
            other = "onnx" if suffix == ".onnx" else "bioimageio"
            raise InputError(f"--out {str(args.out)!r} ends in {suffix}, but --format is "
                             f"savedmodel (the default: a folder of versions); pass --format "
                             f"{other}.")
        try:
            check_export_target(args.out, args.version, _max_image_pixels(args))
        except InputError as error:
            given = {"version": args.version, "max_image_pixels": args.max_image_pixels}
            raise type(error)(as_option(str(error), given)) from None
    elif args.format == "onnx":
        if args.out.suffix.lower() != ".onnx":
            raise InputError(f"--out {str(args.out)!r} must end in .onnx for --format onnx.")
        refuse_existing(args.out, overwrite=args.overwrite, option="--out")
    else:
        check_package_target(args.out, args.name or DEFAULT_PACKAGE_NAME,
                             overwrite=args.overwrite)
        _training_config(args.model, args.training_config)
        if args.sample_image is not None and not args.sample_image.is_file():
            raise InputNotFoundError(f"--sample-image {str(args.sample_image)!r} does not exist.")
    _check_paths(args)


def run(args: argparse.Namespace) -> int:
    """Runs ``unet export``: checks every option first, then loads, exports and prints the path.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> _ = add_parser(parser.add_subparsers())
        >>> run(parser.parse_args(["export", "--model", "no-such-model.keras", "--out", "models"]))
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputNotFoundError: --model 'no-such-model.keras' does not exist.
    """
    prepare_once(args)
    if args.format == "savedmodel":
        return _export_savedmodel(args)
    if args.format == "onnx":
        return _export_onnx(args)
    return _export_bioimageio(args)


def _refuse_options_of_other_formats(args: argparse.Namespace) -> None:
    given = {**({} if args.format == "savedmodel" else SAVEDMODEL_OPTIONS),
             **({} if args.format != "savedmodel" else ONNX_OPTIONS),
             **({} if args.format == "bioimageio" else PACKAGE_OPTIONS)}
    for attribute, option in given.items():
        if getattr(args, attribute) is not None:
            raise InputError(f"{option} does not apply to --format {args.format}.")
    if args.format != "savedmodel" and not args.warmup:
        raise InputError(f"--no-warmup does not apply to --format {args.format}.")
    if args.format == "savedmodel" and args.overwrite:
        raise InputError("--overwrite does not apply to --format savedmodel: versions are never "
                         "overwritten (TF-Serving may be serving them); omit --version to write "
                         "the next one.")


def _check_paths(args: argparse.Namespace) -> None:
    """The model file is there, and the output touches none of the inputs."""
    existing_input(args.model, "--model")
    if args.model.is_dir() or args.model.suffix.lower() != ".keras":
        kind = "a folder" if args.model.is_dir() else "not a .keras file"
        raise InputError(f"--model {str(args.model)!r} is {kind}; export takes the trained "
                         ".keras file (RUN_DIR/checkpoints/best.keras).")
    refuse_overlap(args.out, {"--model": args.model,
                              "--training-config": getattr(args, "training_config", None),
                              "--sample-image": getattr(args, "sample_image", None)}, "--out")


def _load(path: Path, ndim: int | None = None):
    from keras_unet.inference.loading import load_network

    network = load_network(path)
    if ndim is not None and ndim != network.ndim:
        kind = "2D U-Net (images)" if network.ndim == 2 else "3D U-Net (volumes)"
        raise InputError(f"--ndim {ndim}, but --model {str(path)!r} is a {kind}.")
    return network.keras_model


def _max_image_pixels(args: argparse.Namespace) -> int:
    return DEFAULT_MAX_IMAGE_PIXELS if args.max_image_pixels is None else args.max_image_pixels


def _export_savedmodel(args: argparse.Namespace) -> int:
    from keras_unet.serving.export import export_for_serving

    path = export_for_serving(_load(args.model, args.ndim), args.out, version=args.version,
                              tile_size=args.tile_size, max_image_pixels=_max_image_pixels(args),
                              warmup=args.warmup)
    print(path)
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    from keras_unet.serving.onnx_export import DEFAULT_OPSET, check_opset, export_onnx

    opset = DEFAULT_OPSET if args.opset is None else args.opset
    check_opset(opset)
    print(export_onnx(_load(args.model, args.ndim), args.out, opset=opset,
                      overwrite=args.overwrite))
    return 0


def _export_bioimageio(args: argparse.Namespace) -> int:
    from keras_unet.serving.bioimageio import (
        DEFAULT_AUTHORS,
        DEFAULT_LICENSE,
        PackageInfo,
        export_bioimageio,
    )
    from keras_unet.serving.onnx_export import DEFAULT_OPSET, check_opset

    info = PackageInfo(name=args.name or DEFAULT_PACKAGE_NAME,
                       authors=tuple(args.authors or DEFAULT_AUTHORS),
                       license=args.license or DEFAULT_LICENSE, description=args.description,
                       training_config=_training_config(args.model, args.training_config))
    info.checked()
    opset = DEFAULT_OPSET if args.opset is None else args.opset
    check_opset(opset)
    sample = _sample_image(args.sample_image)  # read before the slower model load
    print(export_bioimageio(_load(args.model, args.ndim), args.out, info, sample_image=sample,
                            opset=opset, overwrite=args.overwrite))
    return 0


def _training_config(model: Path, given: Path | None) -> dict | None:
    """The given config file, else the run's ``config.yaml`` beside ``checkpoints/``."""
    from keras_unet.io.config_files import read_yaml
    from keras_unet.training.run_dir import CONFIG_FILE

    option = "--training-config"
    if given is None:
        found = model.resolve().parent.parent / CONFIG_FILE
        if model.resolve().parent.name != "checkpoints" or not found.is_file():
            return None
        given, option = found, f"the run's {CONFIG_FILE}"
    config = read_yaml(given, option)
    if not isinstance(config, dict):
        raise InputError(f"{option} {str(given)!r} holds no mapping of settings.")
    return config


def _sample_image(path: Path | None):
    if path is None:
        return None
    from keras_unet.data.readers import read_image
    from keras_unet.io.tiff import is_stack, read_volume

    if path.suffix.lower() in (".tif", ".tiff") and is_stack(path):  # a 3D model's volume
        return read_volume(path)[0]
    return read_image(path)
