"""Only user errors get the one-line exit-2 treatment; a bug keeps its traceback."""

import ast
from pathlib import Path

import pytest

import keras_unet
from keras_unet import cli
from keras_unet.errors import InputError, UserError

PACKAGE = Path(keras_unet.__file__).parent
BUILT_INS = {"ValueError", "FileNotFoundError", "FileExistsError", "NotADirectoryError",
             "IsADirectoryError"}


def _failing_run(error: Exception):
    def run(args):
        raise error
    return run


@pytest.fixture
def parser_with(monkeypatch):
    """``unet evaluate`` whose run raises the given exception (its input checks skipped)."""
    def install(error):
        original = cli.build_parser

        def build():
            parser = original()
            parser.set_defaults(run=_failing_run(error), prepare=None)
            for action in parser._subparsers._group_actions:
                for sub in action.choices.values():
                    sub.set_defaults(run=_failing_run(error), prepare=None)
            return parser
        monkeypatch.setattr(cli, "build_parser", build)
    return install


ARGS = ["evaluate", "--model", "m.keras", "--data", "d"]


def test_a_user_error_is_one_line_and_exit_2(parser_with, capsys, monkeypatch):
    monkeypatch.delenv("UNET_DEBUG", raising=False)
    parser_with(InputError("--data 'd' holds no images."))
    assert cli.main(ARGS) == 2
    err = capsys.readouterr().err
    assert err == "unet evaluate: error: --data 'd' holds no images.\n"


def test_an_internal_value_error_is_a_bug_with_its_traceback(parser_with, capsys, monkeypatch):
    monkeypatch.delenv("UNET_DEBUG", raising=False)
    parser_with(ValueError("operands could not be broadcast together"))
    assert cli.main(ARGS) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "ValueError: operands could not be broadcast together" in err
    assert "internal error in keras_unet" in err and "please report it" in err


def test_an_os_error_on_a_named_file_is_one_line(parser_with, capsys, monkeypatch):
    monkeypatch.delenv("UNET_DEBUG", raising=False)
    parser_with(PermissionError(13, "Permission denied", "out/a.png"))
    assert cli.main(ARGS) == 1
    err = capsys.readouterr().err
    assert err == "unet evaluate: error: 'out/a.png': Permission denied.\n"


def test_the_package_raises_no_bare_built_in_input_errors():
    """Every input check raises a keras_unet.errors type (still the built-in by inheritance)."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                name = getattr(node.exc.func, "id", None)
                if name in BUILT_INS:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {name}")
    assert not found, found
    assert issubclass(InputError, UserError) and issubclass(InputError, ValueError)
