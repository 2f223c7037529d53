"""The export used as TF-Serving uses it, outside this process: no keras_unet, saved_model_cli."""

import io
import pathlib
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
