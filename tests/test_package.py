"""``import keras_unet``: light until a name is used, and saved models load with plain Keras."""

import subprocess
import sys


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


def test_import_does_not_load_tensorflow_until_a_name_is_used():
    result = _python("import sys, keras_unet\n"
                     "assert 'tensorflow' not in sys.modules\n"
                     "keras_unet.build_unet\n"
                     "assert 'tensorflow' in sys.modules\n")
    assert result.returncode == 0, result.stderr


def test_plain_keras_loads_a_saved_unet_after_import_keras_unet(tmp_path):
    path = tmp_path / "unet.keras"
    saved = _python("import keras_unet\n"
                    "keras_unet.build_unet((None, None, 1), 2, filters=2, depth=2)"
                    f".save({str(path)!r})\n")
    assert saved.returncode == 0, saved.stderr
    loaded = _python("import keras\nimport keras_unet\n"
                     f"model = keras.models.load_model({str(path)!r})\n"
                     "print(model.output_shape)\n")
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "(None, None, None, 2)"
