"""``unet export``: write a trained model as a TF-Serving version.

    unet export --model unet.keras --out models/unet [--version N] [--tile-size T]
                [--max-image-pixels P] [--no-warmup]

Writes ``models/unet/<N>/`` (next free number by default) atomically; an existing version is
never overwritten. Point TF-Serving at ``models/unet`` (see ``serving/README.md``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keras_unet.cli import help_text


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers ``unet export``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> sub = add_parser(parser.add_subparsers())
        >>> sub.parse_args(["--model", "m.keras", "--out", "base", "--version", "3"]).version
        3
    """
    parser = subparsers.add_parser(
        "export", help="write a SavedModel version for TF-Serving",
        description=help_text(__doc__)[0], formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--model", required=True, type=Path, help="the trained .keras file")
    parser.add_argument("--out", required=True, type=Path,
                        help="export base folder that TF-Serving watches (versions go inside)")
    parser.add_argument("--version", type=int, default=None,
                        help="version number (default: one more than the largest present)")
    parser.add_argument("--tile-size", type=int, default=None,
                        help="model input tile used inside the graph (default: 512 px output)")
    parser.add_argument("--max-image-pixels", type=int, default=None,
                        help="largest height*width a request may send (default: "
                             "keras_unet.serving.DEFAULT_MAX_IMAGE_PIXELS, 64 Mpx)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="do not write assets.extra/tf_serving_warmup_requests (default: "
                             "written)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs ``unet export``: checks the paths first, then loads, exports and prints the path.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> _ = add_parser(parser.add_subparsers())
        >>> run(parser.parse_args(["export", "--model", "no-such-model.keras", "--out", "models"]))
        Traceback (most recent call last):
        ...
        FileNotFoundError: --model 'no-such-model.keras' does not exist.
    """
    from keras_unet.cli.predict import load_predictor
    from keras_unet.serving.export import (DEFAULT_MAX_IMAGE_PIXELS, check_export_target,
                                           export_for_serving)

    pixels = DEFAULT_MAX_IMAGE_PIXELS if args.max_image_pixels is None else args.max_image_pixels
    check_export_target(args.out, args.version, pixels)  # before the slow model load
    if args.model.is_dir():
        raise ValueError(f"--model {str(args.model)!r} is a folder; export takes a .keras file.")
    model = load_predictor(args.model).keras_model
    path = export_for_serving(model, args.out, version=args.version, tile_size=args.tile_size,
                              max_image_pixels=pixels, warmup=args.warmup)
    print(path)
    return 0
