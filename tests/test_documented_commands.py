"""Every `unet` command line in the code blocks of README.md, training/README.md and
serving/README.md is one the command line accepts as written.

What each command does is run as a subprocess by the tests of its feature (the READMEs' export
commands in test_cli_export, the EM recipe in test_training_time_budget, ...); this test guards
all of them at once against drift (an option renamed, a choice removed, a value out of range),
in milliseconds and without TensorFlow: the parser, and for `unet train` the config the command
describes, which checks every value before any work.
"""

import pathlib
import shlex

import pytest

from keras_unet.cli import build_parser
from keras_unet.cli.train import resolved_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "training/README.md", "serving/README.md")


def documented_commands(document: str) -> list[list[str]]:
    """The `unet` command lines in a document's code blocks (continuation lines joined, comments
    dropped); lines that do not start a block's line with `unet` (a folder tree's notes) are not
    commands."""
    commands, inside, line_so_far = [], False, ""
    for line in (ROOT / document).read_text().splitlines():
        if line.startswith("```"):
            inside, line_so_far = not inside, ""
            continue
        if not inside:
            continue
        line = line_so_far + line
        if line.endswith("\\"):
            line_so_far = line[:-1]
            continue
        line_so_far = ""
        if line.startswith("unet "):
            commands.append(shlex.split(line, comments=True))
    return commands


COMMANDS = [(document, command) for document in DOCUMENTS
            for command in documented_commands(document)]


def test_the_documents_show_commands_of_every_kind():
    shown = {command[1] for _, command in COMMANDS}
    assert shown == {"train", "predict", "evaluate", "export"}
    assert len(COMMANDS) >= 30


@pytest.mark.parametrize("document, command", COMMANDS,
                         ids=[f"{document}: {shlex.join(command)}"[:90]
                              for document, command in COMMANDS])
def test_every_documented_command_is_accepted_as_written(document, command, monkeypatch,
                                                         capsys):
    monkeypatch.chdir(ROOT)  # training/paper.yaml and the other configs, as from a checkout
    try:
        args = build_parser().parse_args(command[1:])
    except SystemExit:
        pytest.fail(f"{document}: `{shlex.join(command)}` is refused: "
                    f"{capsys.readouterr().err.strip()}")
    if args.command == "train":
        resolved_config(args)
