"""``unet export --format onnx|bioimageio``: end to end from a .keras file, and every refusal.

Refusals happen before the model is loaded, exit 2 with one line, and leave the output as it was.
"""

import pathlib
import re
import shlex
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image

from keras_unet import build_unet
from keras_unet.cli import main
from keras_unet.serving.onnx_network import OnnxNetwork

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as ``unet train`` leaves it: config.yaml and checkpoints/best.keras."""
    folder = tmp_path_factory.mktemp("run")
    (folder / "checkpoints").mkdir()
    model = build_unet((None, None, 1), 2, filters=4, depth=2)
    model.save(folder / "checkpoints" / "best.keras")
    (folder / "config.yaml").write_text(yaml.safe_dump({"depth": 2, "filters": 4}))
    return folder, model


def test_the_readmes_onnx_and_bioimageio_commands_run_as_typed(tmp_path):
    """README.md's `unet export --format onnx|bioimageio` block, run as a user types it where
    `unet train --run-dir runs/isbi` left its checkpoint, and the bioimageio one again with
    `--out zoo/cells.zip` (the README says --out may name the zip); every file then segments
    as the checkpoint does."""
    block = next(block for block in re.findall(r"```bash\n(.*?)```", README.read_text(),
                                               flags=re.S) if "--format bioimageio" in block)
    commands = [shlex.split(line) for line in block.replace("\\\n", " ").splitlines()
                if line.startswith("unet export")]
    assert len(commands) == 2
    checkpoints = tmp_path / "runs" / "isbi" / "checkpoints"
    checkpoints.mkdir(parents=True)
    build_unet((None, None, 1), 2, filters=4, depth=2).save(checkpoints / "best.keras")
    unet = str(pathlib.Path(sys.executable).with_name("unet"))
    named_zip = [*commands[1][1:commands[1].index("--out") + 1], "zoo/cells.zip",
                 *commands[1][commands[1].index("--out") + 2:]]  # README: --out may name it
    for command in [*commands, ["unet", *named_zip]]:
        done = subprocess.run([unet, *command[1:]], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "zoo").iterdir()) == [
        "ISBI_membranes_U-Net.zip", "cells.zip"]
    Image.fromarray((np.random.default_rng(5).random((70, 90)) * 255).astype("uint8")).save(
        tmp_path / "image.png")
    probabilities = []
    for model in ("runs/isbi/checkpoints/best.keras", "models/unet.onnx",
                  "zoo/ISBI_membranes_U-Net.zip", "zoo/cells.zip"):
        out = tmp_path / "predictions" / pathlib.Path(model).name
        assert main(["predict", "--model", str(tmp_path / model), "--input",
                     str(tmp_path / "image.png"), "--output", str(out), "--probabilities"]) == 0
        probabilities.append(tifffile.imread(out / "image_probabilities.tif"))
    for other in probabilities[1:]:
        np.testing.assert_allclose(other, probabilities[0], atol=1e-4)


def test_onnx_export_writes_the_file_and_prints_its_path(run_dir, tmp_path, capsys):
    folder, model = run_dir
    out = tmp_path / "models" / "unet.onnx"
    assert main(["export", "--format", "onnx", "--model", str(folder / "checkpoints" /
                                                             "best.keras"),
                 "--out", str(out), "--opset", "12"]) == 0  # the lowest
    assert capsys.readouterr().out.strip() == str(out)
    tiles = np.random.default_rng(0).normal(size=(1, 60, 60, 1)).astype("float32")
    np.testing.assert_allclose(OnnxNetwork.from_file(out).predict_tiles(tiles),
                               model(tiles).numpy(), atol=1e-4)
    assert sorted(p.name for p in out.parent.iterdir()) == ["unet.onnx"]


def test_bioimageio_export_passes_the_options_and_the_runs_config(run_dir, tmp_path, capsys,
                                                                  monkeypatch):
    """The CLI's part only: the package itself is tested in test_bioimageio.py."""
    from keras_unet.serving import bioimageio

    folder, model = run_dir
    calls = []

    def export(keras_model, out, info, **options):
        calls.append((keras_model, out, info, options))
        return out / "written.zip"

    monkeypatch.setattr(bioimageio, "export_bioimageio", export)
    assert main(["export", "--format", "bioimageio", "--model",
                 str(folder / "checkpoints" / "best.keras"), "--out", str(tmp_path / "zoo"),
                 "--name", "cells U-Net (demo)", "--author", "A. Tester", "--author", "B. Tester",
                 "--license", "CC0-1.0", "--opset", "15", "--overwrite"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "zoo" / "written.zip")
    (keras_model, out, info, options), = calls
    assert keras_model.get_weights()[0].tobytes() == model.get_weights()[0].tobytes()
    assert out == tmp_path / "zoo"
    assert (info.name, info.authors, info.license) == (
        "cells U-Net (demo)", ("A. Tester", "B. Tester"), "CC0-1.0")
    assert info.training_config == {"depth": 2, "filters": 4}  # found beside checkpoints/
    assert options == {"sample_image": None, "opset": 15, "overwrite": True}


def _package_folder(tmp_path):
    folder = tmp_path / "zoo"
    folder.mkdir()
    with zipfile.ZipFile(folder / "old.zip", "w") as archive:
        archive.writestr("rdf.yaml", "type: model\n")
    return folder


REFUSALS = [  # (options after --model, what the one-line error says)
    (["--format", "onnx", "--out", "{tmp}/unet.zip"], "must end in .onnx"),
    (["--format", "onnx", "--out", "{tmp}/exists.onnx"], "already exists; pass --overwrite to "
     "replace it."),
    (["--out", "{tmp}/base", "--version", "0"], "--version must be a positive integer, got 0."),
    (["--out", "{tmp}/base", "--max-image-pixels", "0"], "--max-image-pixels must be a positive"),
    (["--format", "onnx", "--out", "{tmp}/u.onnx", "--opset", "99"], "--opset 99 cannot be"),
    (["--format", "onnx", "--out", "{tmp}/u.onnx", "--version", "2"],
     "--version does not apply to --format onnx"),
    (["--format", "onnx", "--out", "{tmp}/u.onnx", "--name", "abcde"],
     "--name does not apply to --format onnx"),
    (["--out", "{tmp}/unet.onnx"], "ends in .onnx, but --format is savedmodel (the default: a "
     "folder of versions); pass --format onnx."),
    (["--out", "{tmp}/cells.ZIP"], "pass --format bioimageio."),
    (["--out", "{tmp}/base", "--opset", "13"], "--opset does not apply to --format savedmodel"),
    (["--out", "{tmp}/base", "--overwrite"], "--overwrite does not apply to --format savedmodel"),
    (["--out", "{tmp}/served/1"], "is the SavedModel '{tmp}/served/1'; pass the folder of "
     "numbered versions TF-Serving watches ('{tmp}/served' writes version 2 there)"),
    (["--out", "{tmp}/served/1/variables"], "is inside the SavedModel '{tmp}/served/1'"),
    (["--format", "bioimageio", "--out", "{tmp}/zoo"], "already holds a bioimage.io package"),
    (["--format", "bioimageio", "--out", "{tmp}/zoo/old.zip"], "already exists; pass --overwrite"),
    (["--format", "bioimageio", "--out", "{tmp}/exists.onnx/cells.zip"], "is a file, not a"),
    (["--format", "bioimageio", "--out", "{tmp}/new", "--name", "bad/name"], "--name 'bad/name'"),
    (["--format", "bioimageio", "--out", "{tmp}/new", "--license", "MITT"], "--license 'MITT'"),
    (["--format", "bioimageio", "--out", "{tmp}/new", "--training-config", "{tmp}/none.yaml"],
     "--training-config '"),
    (["--format", "bioimageio", "--out", "{tmp}/new", "--sample-image", "{tmp}/none.png"],
     "--sample-image '"),
    (["--format", "bioimageio", "--out", "{tmp}/new", "--no-warmup"],
     "--no-warmup does not apply"),
]


def test_bad_input_is_refused_in_one_line_before_loading(tmp_path, capsys):
    """One test for all refusals (each is instant; a test each would cost a Keras reset)."""
    model = tmp_path / "not-loaded.keras"
    model.write_text("never read: every refusal comes first")
    _package_folder(tmp_path)
    (tmp_path / "exists.onnx").write_bytes(b"old")
    (tmp_path / "served" / "1" / "variables").mkdir(parents=True)  # a version already served
    (tmp_path / "served" / "1" / "saved_model.pb").write_bytes(b"served")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for extra, match in REFUSALS:
        args = ["export", "--model", str(model)] + [a.format(tmp=tmp_path) for a in extra]
        assert main(args) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("unet export: error:"), (extra, err)
        assert match.format(tmp=tmp_path) in err, (extra, err)
        assert len(err.splitlines()) == 1, err
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, extra
    assert (tmp_path / "exists.onnx").read_bytes() == b"old"


@pytest.mark.parametrize("model", ["unet.onnx", "cells.zip", "notes.txt", "served"])
def test_a_model_other_than_a_keras_file_is_refused_before_loading(tmp_path, capsys, model):
    path = tmp_path / model
    path.mkdir() if model == "served" else path.write_bytes(b"not read")
    assert main(["export", "--model", str(path), "--out", str(tmp_path / "base")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"unet export: error: --model {str(path)!r} is "), err
    assert "export takes the trained .keras file" in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [model]


@pytest.mark.parametrize("export_format, out", [("onnx", "dense.onnx"), ("bioimageio", "zoo")])
def test_a_model_that_is_not_a_unet_is_refused_and_nothing_written(tmp_path, capsys,
                                                                    export_format, out):
    dense = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Dense(2)])
    dense.save(tmp_path / "dense.keras")
    assert main(["export", "--format", export_format, "--model", str(tmp_path / "dense.keras"),
                 "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert "no MaxPooling2D layer" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense.keras"]
