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
