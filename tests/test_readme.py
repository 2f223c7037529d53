"""The README's commands and Keras example are the ones that work."""

import importlib.util
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


def _readme_commands():
    spec = importlib.util.spec_from_file_location("readme_commands", CI_SCRIPT.parent /
                                                  "readme_commands.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.readme_commands(README)


def test_ci_reads_both_readme_commands_from_the_readme():
    train, tests = _readme_commands()
    assert "pip install -e . &&" in train and train.endswith("&& unet train")  # no extras
    assert tests.endswith("&& pytest -n auto")  # the suite on every core (pytest-xdist)
    ci = CI_SCRIPT.read_text()
    assert "readme_command 0" in ci and "readme_command 1" in ci
    assert train not in ci and tests not in ci  # read from the README, never copied


def test_real_data_example_runs_after_the_keras_example(tmp_path, monkeypatch):
    """The README's second example (load, tile, fit, predict, evaluate, export) runs as printed."""
    from PIL import Image

    from keras_unet.data import synthetic_cells

    first, second = [block for block in _blocks("python") if "model" in block][:2]
    assert "load_samples" in second
    folder = tmp_path / "data" / "my_cells"
    for name in ("images", "masks"):
        (folder / name).mkdir(parents=True)
    for sample in synthetic_cells(4, size=64):
        stem = sample.path.replace(":", "_")
        Image.fromarray(sample.image).save(folder / "images" / f"{stem}.png")
        Image.fromarray(((sample.labels > 0) * 255).astype("uint8")).save(
            folder / "masks" / f"{stem}.png")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(first, "README.md", "exec"), namespace)
    exec(compile(second, "README.md", "exec"), namespace)
    assert namespace["probabilities"].shape == (64, 64, 2)
    assert (tmp_path / "models" / "unet" / "1" / "saved_model.pb").is_file()
