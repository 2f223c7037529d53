"""The ``unet`` command as a whole: its help reads as plain text."""

import pytest

from keras_unet.cli import SUBCOMMANDS, main


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_is_plain_text(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert f"unet {command}" in text
    assert "``" not in text
