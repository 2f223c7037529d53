"""The ``unet`` command as a whole: fast plain-text help, quiet start, one-line errors."""

import os
import subprocess
import sys

import pytest

from keras_unet.cli import SUBCOMMANDS, build_parser, main


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_is_plain_text(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert f"unet {command}" in text
    assert "``" not in text


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("TF_CPP_MIN_LOG_LEVEL", "UNET_DEBUG")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**environment, **env}, timeout=300)


@pytest.mark.parametrize("argv", [["--help"]] + [[command, "--help"] for command in SUBCOMMANDS])
def test_help_does_not_load_tensorflow(argv):
    """Help answers at once: TensorFlow is imported only when a command runs."""
    result = _run("import sys\nfrom keras_unet.cli import main\ntry:\n"
                  f"    main({argv!r})\nexcept SystemExit:\n    pass\n"
                  "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
                  "assert 'keras' not in sys.modules, 'keras imported'\n")
    assert result.returncode == 0, result.stderr


def test_a_command_writes_only_its_own_line_to_stderr(tmp_path):
    """TensorFlow starts (here to load the model) without its start-up log lines."""
    (tmp_path / "m.keras").write_text("not a model")
    (tmp_path / "data").mkdir()
    code = ("import sys\nfrom keras_unet.cli import main\n"
            f"code = main(['evaluate', '--model', {str(tmp_path / 'm.keras')!r}, '--data', "
            f"{str(tmp_path / 'data')!r}])\n"
            "assert 'tensorflow' in sys.modules\nsys.exit(code)\n")
    result = _run(code)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"unet evaluate: error: --model {str(tmp_path / 'm.keras')!r} is not "
                           "a Keras model")


def test_help_shows_the_defaults():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    text = train.format_help()
    assert "(default: 15)" in text and "(default: adam)" in text  # epochs, optimizer


def test_output_piped_into_a_reader_that_stops_ends_quietly(tmp_path):
    """`unet ... | head -1`: the command stops when head does, without a traceback."""
    script = ("import sys\nfrom keras_unet.cli import evaluate, main\n"
              "evaluate.prepare = lambda args: None\n"
              "def run(args):\n    for line in range(10**6):\n        print(line)\n"
              "evaluate.run = run\nsys.exit(main(['evaluate', '--model', 'm', '--data', 'd']))\n")
    command = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=tmp_path)
    assert command.stdout.readline() == b"0\n"
    command.stdout.close()  # as `head -1` does after its line
    assert command.wait(timeout=120) == 141
    assert command.stderr.read().decode().count("Traceback") == 0
