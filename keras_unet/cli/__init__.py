"""The ``unet`` command: ``unet train | predict | evaluate | export``.

Each subcommand lives in its own module with two functions, ``add_parser(subparsers)`` and
``run(args) -> int``; heavy imports (TensorFlow) happen inside ``run`` so ``unet --help`` is fast.
TensorFlow starts without its start-up log lines (:mod:`keras_unet.cli.tensorflow_start`)
unless ``--verbose`` or ``UNET_DEBUG=1``; a subcommand that must configure TensorFlow before
anything else touches it (``unet train``'s multi-worker strategy) sets ``first(args)``, which
runs right after the import, and one that can check its input without TensorFlow sets
``prepare(args)``, which runs before it. Mistakes a user can fix (bad paths, values, files)
are raised where the input is checked as :class:`keras_unet.errors.UserError` and printed as one
line, exit code 2 (``UNET_DEBUG=1`` shows the traceback instead). A fault
(:class:`keras_unet.errors.FaultError`: a full disk, a read-only folder, a corrupt file) or an
operating-system error on a named file is one line too, exit code 1. Anything else is a bug in
keras_unet: its traceback is printed with a request to report it, exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from keras_unet.cli.tensorflow_start import start_tensorflow
from keras_unet.errors import FaultError, UserError, os_error_line

SUBCOMMANDS = ("train", "predict", "evaluate", "export")

VERBOSE_HELP = "show TensorFlow's start-up log lines (as does UNET_DEBUG=1)"


def help_text(docstring: str) -> tuple[str, str]:
    """A subcommand module's docstring as ``(description, epilog)`` for ``--help``, without RST.

    The first paragraph is the description, the rest the epilog; double backticks are dropped.

    Example:
        >>> help_text("``unet x``: does x.\\n\\n    unet x --fast")
        ('unet x: does x.', '    unet x --fast')
    """
    description, _, epilog = docstring.replace("``", "").partition("\n\n")
    return description, epilog


def as_option(message: str, given: dict) -> str:
    """A config error about a value given on the command line, naming the option as typed.

    Example:
        >>> as_option("time_limit must be a number, got 'abc'.", {"time_limit": "abc"})
        "--time-limit must be a number, got 'abc'."
        >>> as_option("tile_size: input size 125 does not fit", {"tile_size": 125})
        '--tile-size: input size 125 does not fit'
    """
    name = next((name for name in given if message.startswith(f"{name} ")
                 or message.startswith(f"{name}:")), None)
    return message if name is None else "--" + name.replace("_", "-") + message[len(name):]


def prepare_once(args: argparse.Namespace) -> None:
    """Runs the subcommand's ``prepare(args)`` unless it already ran: :func:`main` runs it before
    TensorFlow starts, and a subcommand's ``run`` called on its own runs it first.

    Example:
        >>> calls = []
        >>> args = argparse.Namespace(prepare=calls.append)
        >>> prepare_once(args); prepare_once(args)
        >>> len(calls)
        1
    """
    if getattr(args, "prepare", None) is not None and not getattr(args, "prepared", False):
        args.prepare(args)
        args.prepared = True


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``unet`` with every subcommand registered.

    Example:
        >>> build_parser().prog
        'unet'
    """
    parser = argparse.ArgumentParser(
        prog="unet", description="U-Net (Ronneberger et al. 2015) for TensorFlow/Keras."
    )
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"keras_unet.cli.{name}")
        subparser = module.add_parser(subparsers)
        subparser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                               help=VERBOSE_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unet`` console script; returns the process exit code.

    A mistake the user can fix is printed as one line on stderr and gives exit code 2; a bug
    prints its traceback and exit code 1.

    Example:
        >>> main(["evaluate", "--model", "no-such-model.keras", "--data", "no-such-folder"])
        2
    """
    args = build_parser().parse_args(argv)
    debug = bool(os.environ.get("UNET_DEBUG"))
    try:
        first = getattr(args, "first", None)
        prepare_once(args)  # checks that need no TensorFlow
        start_tensorflow(verbose=args.verbose or debug,
                         first=None if first is None else lambda: first(args))
        return int(args.run(args) or 0)
    except UserError as error:
        if debug:
            raise
        print(f"unet {args.command}: error: {error}", file=sys.stderr)
        return 2
    except FaultError as error:
        if debug:
            raise
        print(f"unet {args.command}: error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # what reads our output stopped (`| head`): stop quietly, as
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Unix tools do
        return 141  # 128 + SIGPIPE, what a shell reports for them
    except OSError as error:
        if debug:
            raise
        line = os_error_line(error)
        if line is None:
            return _report_bug(args.command)
        print(f"unet {args.command}: error: {line}", file=sys.stderr)
        return 1
    except MemoryError:
        if debug:
            raise
        print(f"unet {args.command}: error: out of memory; use smaller tiles (--tile-size), "
              "blocks or images.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"unet {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        return _report_bug(args.command)


def _report_bug(command: str) -> int:
    """Prints the traceback of the exception being handled as a bug to report; exit code 1."""
    from keras_unet import __version__

    traceback.print_exc()
    print(f"unet {command}: internal error in keras_unet {__version__} (not a problem with your "
          "input): please report it with the traceback above.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
