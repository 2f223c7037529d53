"""The README's commands and Keras example are the ones that work."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
CI_SCRIPT = pathlib.Path(__file__).resolve().parents[1] / ".ci" / "run"


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_keras_example_runs_and_is_at_most_15_lines(tmp_path, monkeypatch):
    example = next(block for block in _blocks("python") if "build_unet" in block)
    assert len(example.strip().splitlines()) <= 15
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    images = namespace["images"]
    np.testing.assert_array_equal(namespace["model"].predict(images, verbose=0),
                                  namespace["restored"].predict(images, verbose=0))


def test_ci_runs_exactly_the_readme_test_command():
    test_command = next(block.strip() for block in _blocks("bash") if "pytest" in block)
    assert test_command in CI_SCRIPT.read_text().splitlines()
