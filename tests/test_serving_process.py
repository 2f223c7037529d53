"""The export used as TF-Serving uses it, outside this process: no keras_unet, saved_model_cli."""

import base64
import io
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from PIL import Image

from keras_unet import build_unet, predict_tiled
from keras_unet.class_layout import mask_from_probabilities
from keras_unet.serving import export_for_serving

pytestmark = pytest.mark.slow  # each test starts a Python process that loads TensorFlow
TILE = 64
SAVED_MODEL_CLI = pathlib.Path(sys.executable).with_name("saved_model_cli")
REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model, version dir, image, its PNG file) for a depth-2 valid-padding U-Net."""
    keras.utils.set_random_seed(1)
    model = build_unet((None, None, 1), 2, filters=4, depth=2)
    folder = tmp_path_factory.mktemp("process")
    path = export_for_serving(model, folder / "unet", tile_size=TILE, warmup=False)
    image = np.random.default_rng(2).integers(0, 255, (41, 77), dtype=np.uint8)
    png = folder / "image.png"
    Image.fromarray(image).save(png)
    return model, path, image, png


def _run(args, cwd):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300,
                            env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_fresh_process_without_keras_unet_serves_both_signatures(exported, tmp_path):
    model, path, image, png = exported
    script = textwrap.dedent(f"""
        import sys

        class Blocked:  # any attempt to import keras_unet fails loudly
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "keras_unet":
                    raise ImportError("keras_unet must not be needed to serve")

        sys.meta_path.insert(0, Blocked())
        import numpy as np
        import tensorflow as tf

        loaded = tf.saved_model.load({str(path)!r})
        image = np.load("image.npy")
        raw = loaded.signatures["serving_default"](image=tf.constant(image[None, ..., None]))
        data = open({str(png)!r}, "rb").read()
        encoded = loaded.signatures["encoded"](image_bytes=tf.constant([data]))
        np.save("raw.npy", raw["probabilities"].numpy())
        np.save("labels.npy", raw["labels"].numpy())
        np.save("encoded.npy", encoded["probabilities"].numpy())
        open("mask.png", "wb").write(encoded["labels_png_bytes"].numpy()[0])
        assert not [m for m in sys.modules if m.startswith("keras_unet")]
        print("ok")
    """)
    np.save(tmp_path / "image.npy", image.astype(np.float32))
    assert _run([sys.executable, "-c", script], tmp_path).strip().endswith("ok")
    expected = predict_tiled(model, image, tile_size=TILE)
    for name in ("raw.npy", "encoded.npy"):
        assert np.abs(np.load(tmp_path / name)[0] - expected).max() < 1e-4
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy")[0], expected.argmax(-1))
    mask = np.asarray(Image.open(io.BytesIO((tmp_path / "mask.png").read_bytes())))
    np.testing.assert_array_equal(mask, mask_from_probabilities(expected))


def test_saved_model_cli_shows_both_signatures(exported, tmp_path):
    shown = _run([str(SAVED_MODEL_CLI), "show", "--dir", str(exported[1]), "--all"], tmp_path)
    default = shown.split("signature_def['serving_default']")[1]
    assert "inputs['image'] tensor_info:" in default
    assert "dtype: DT_FLOAT" in default and "shape: (-1, -1, -1, 1)" in default
    assert "outputs['probabilities']" in default and "outputs['labels']" in default
    assert "Method name is: tensorflow/serving/predict" in default
    encoded = shown.split("signature_def['encoded']")[1]
    assert "inputs['image_bytes'] tensor_info:" in encoded and "dtype: DT_STRING" in encoded
    assert "outputs['labels_png_bytes']" in encoded


@pytest.mark.parametrize("signature, argument", [("serving_default", "image"),
                                                 ("encoded", "image_bytes")])
def test_saved_model_cli_runs_each_signature(exported, tmp_path, signature, argument):
    model, path, image, png = exported
    if signature == "serving_default":
        np.save(tmp_path / "input.npy", image[None, ..., None].astype(np.float32))
    else:
        np.save(tmp_path / "input.npy", np.array([png.read_bytes()]))
    _run([str(SAVED_MODEL_CLI), "run", "--dir", str(path), "--tag_set", "serve",
          "--signature_def", signature, "--inputs", f"{argument}={tmp_path / 'input.npy'}",
          "--outdir", str(tmp_path / "out")], tmp_path)
    probabilities = np.load(tmp_path / "out" / "probabilities.npy")
    assert np.abs(probabilities[0] - predict_tiled(model, image, tile_size=TILE)).max() < 1e-4


def _deploy_block() -> list[str]:
    """serving/README.md's Deploy commands, as a user copies them (comments dropped)."""
    text = (REPO / "serving" / "README.md").read_text()
    block = text.split("## Deploy", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_the_deploy_commands_run_as_typed_against_a_stand_in_server(tmp_path):
    """The README's Deploy block as typed, `docker compose up -d` aside (no Docker here): a
    stand-in that serves the export as TF-Serving does (tests/serving_standin.py) answers
    curl and client.py on the README's ports; client.py's refusals are one line."""
    if not (_port_free(8500) and _port_free(8501)):
        pytest.skip("ports 8500/8501 are taken (a TF-Serving running here?)")
    export, compose, status, predict, client = _deploy_block()
    assert compose == "cd serving && docker compose up -d"
    shutil.copytree(REPO / "serving", tmp_path / "serving",
                    ignore=shutil.ignore_patterns("models"))
    keras.utils.set_random_seed(3)
    build_unet((None, None, 1), 2, filters=4, depth=2).save(tmp_path / "unet.keras")
    image = np.random.default_rng(4).integers(0, 255, (70, 90), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "serving" / "cells.png")
    environment = {name: value for name, value in os.environ.items()  # as a user's shell
                   if name != "TF_CPP_MIN_LOG_LEVEL"}
    environment["PATH"] = os.pathsep.join([str(pathlib.Path(sys.executable).parent),
                                           environment.get("PATH", "")])  # our python, unet

    def shell(command, cwd, code=0):
        done = subprocess.run(command, shell=True, cwd=cwd, env=environment,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == code, (command, done.stdout, done.stderr[-3000:])
        return done

    shell(export, tmp_path)
    base = tmp_path / "serving" / "models" / "unet"
    log = tmp_path / "server.log"
    with log.open("w") as errors:
        server = subprocess.Popen([sys.executable, str(REPO / "tests" / "serving_standin.py"),
                                   str(base), "unet"], env=environment, stdout=subprocess.PIPE,
                                  stderr=errors, text=True)
    try:
        assert server.stdout.readline().strip() == "ready", log.read_text()[-3000:]
        versions = json.loads(shell(status, tmp_path).stdout)["model_version_status"]
        assert [(v["version"], v["state"]) for v in versions] == [("1", "AVAILABLE")]
        served = json.loads(shell(predict, tmp_path / "serving").stdout)["predictions"]
        assert base64.b64decode(served[0]["labels_png_bytes"]["b64"]).startswith(b"\x89PNG")
        folder = tmp_path / "serving"
        assert shell(client, folder).stderr.strip() == "cells.png -> cells_mask.png"
        shell("python client.py cells.png --out classes.png --rest --raw", folder)
        refused = shell(client, folder, code=2).stderr  # cells_mask.png exists now
        assert refused == ("client.py: error: --out cells_mask.png already exists; pass "
                           "--overwrite to replace it\n")
    finally:
        server.kill()
        server.wait(timeout=30)
    unreachable = shell("python client.py cells.png --out again.png --rest", folder, code=1)
    assert unreachable.stderr.startswith("client.py: error: http://localhost:8501: ")
    assert len(unreachable.stderr.splitlines()) == 1 and not (folder / "again.png").exists()
    mask = np.asarray(Image.open(folder / "cells_mask.png"))
    expected = mask_from_probabilities(predict_tiled(keras.models.load_model(
        tmp_path / "unet.keras"), image))
    np.testing.assert_array_equal(mask, expected)  # what `unet predict` writes
    np.testing.assert_array_equal(np.asarray(Image.open(folder / "classes.png")) * 255, mask)
    assert sorted(p.name for p in folder.glob("*.png")) == ["cells.png", "cells_mask.png",
                                                            "classes.png"]  # nothing half-written
