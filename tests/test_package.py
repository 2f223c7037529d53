"""``import keras_unet``: light until a name is used, and saved models load in any import order."""

import subprocess
import sys

import pytest

FIRST_IMPORTS = ("import keras_unet", "from keras_unet.data import synthetic_cells",
                 "import keras_unet.evaluation")


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


def test_import_does_not_load_tensorflow_until_a_name_is_used():
    result = _python("import sys, keras_unet\n"
                     "assert 'tensorflow' not in sys.modules\n"
                     "keras_unet.build_unet\n"
                     "assert 'tensorflow' in sys.modules\n")
    assert result.returncode == 0, result.stderr


def test_unet_help_answers_without_tensorflow_scipy_keras_or_napari():
    result = _python("import sys\nfrom keras_unet.cli import build_parser\n"
                     "build_parser().format_help()\n"
                     "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                     "('tensorflow', 'keras', 'scipy', 'skimage', 'napari', 'magicgui', "
                     "'qtpy', 'PyQt6')))\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def compiled_model(tmp_path_factory):
    """A U-Net saved by keras_unet, compiled with its loss and metrics."""
    path = tmp_path_factory.mktemp("saved") / "unet.keras"
    saved = _python(
        "import keras_unet\nfrom keras_unet.losses import WeightedCrossentropy\n"
        "from keras_unet.metrics import Dice, IoU\n"
        "model = keras_unet.build_unet((None, None, 1), 2, filters=2, depth=2)\n"
        "model.compile(optimizer='adam', loss=WeightedCrossentropy(), "
        "metrics=[IoU(2, [1]), Dice(2, [1])])\n"
        f"model.save({str(path)!r})\n")
    assert saved.returncode == 0, saved.stderr
    return path


@pytest.mark.parametrize("keras_first", [False, True], ids=["keras-after", "keras-before"])
@pytest.mark.parametrize("first_import", FIRST_IMPORTS)
def test_a_saved_model_loads_whatever_the_import_order(compiled_model, first_import,
                                                       keras_first):
    imports = ["import keras", first_import][::1 if keras_first else -1]
    loaded = _python("\n".join(imports) + "\n"
                     f"model = keras.models.load_model({str(compiled_model)!r}, safe_mode=True)\n"
                     "print(type(model).__name__, type(model.loss).__name__,\n"
                     "      model.output_shape)\n")
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split()[:2] == ["UNet", "WeightedCrossentropy"]


def test_what_napari_s_process_imports_of_the_plugin_never_loads_tensorflow():
    """The widgets import these (and napari, magicgui, Qt); TensorFlow must never load beside
    napari's OpenGL (keras_unet/napari/model_process.py), so the sample data, the layer data and
    the jobs' types come without it."""
    result = _python("import sys\n"
                     "import keras_unet.instances.settings, keras_unet.napari.jobs\n"
                     "import keras_unet.napari.layer_data, keras_unet.napari.own_layers\n"
                     "import keras_unet.napari.model_process\n"
                     "from keras_unet.napari.sample_data import synthetic_cells_sample\n"
                     "synthetic_cells_sample()\n"
                     "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                     "('tensorflow', 'keras')))\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
