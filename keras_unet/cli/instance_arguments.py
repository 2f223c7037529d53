"""The options that say how ``unet predict`` and ``unet evaluate`` turn probabilities into cells.

One definition for both commands, so a model is scored with the same cells it predicts.
"""

from __future__ import annotations

import argparse

from keras_unet.errors import InputError

INSTANCE_METHODS = ("auto", "components", "watershed", "membranes")
INSTANCE_MIN_SIZE = 10
"""``keras_unet.instances.METHODS`` and ``MIN_SIZE`` (the tests check that they agree), restated
so that ``unet --help`` does not wait for SciPy and scikit-image."""


def add_instance_arguments(parser: argparse.ArgumentParser, purpose: str) -> None:
    """Adds ``--instance-method`` and ``--min-size``; ``purpose`` says what the cells are for.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_instance_arguments(parser, "scoring")
        >>> parser.parse_args(["--instance-method", "membranes"]).instance_method
        'membranes'
    """
    parser.add_argument("--instance-method", choices=INSTANCE_METHODS, default="auto",
                        help=f"how cells are found for {purpose}: 'auto' is 'watershed'\n"
                             "from the cell interiors for 3-class models, connected\n"
                             "'components' for 2-class ones; 'membranes' for cells that\n"
                             "tile the image with membranes between them, as in EM\n"
                             "(default: %(default)s)")
    parser.add_argument("--min-size", type=int, default=INSTANCE_MIN_SIZE,
                        help="drop cells under this many pixels (default: %(default)s)")


def instance_options(args: argparse.Namespace) -> dict:
    """``instance_labels`` keyword arguments from the parsed options; a negative size is refused.

    Example:
        >>> instance_options(argparse.Namespace(instance_method="auto", min_size=30))
        {'method': 'auto', 'min_size': 30}
    """
    if args.min_size < 0:
        raise InputError(f"--min-size must be >= 0 (pixels), got {args.min_size}.")
    return {"method": args.instance_method, "min_size": args.min_size}
