"""Shared test fixtures: quiet TensorFlow, a clean Keras state per test, tiny models.

Keras is not imported here: the napari tests (test_napari.py) run napari's OpenGL viewer, which
cannot share a process with TensorFlow (keras_unet/napari/model_process.py), so nothing may load
it in their process. The Keras state is cleaned wherever a test has loaded Keras.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as quiet as `unet` itself

import pytest  # noqa: E402


def _keras():
    """Keras, if something in this process has loaded it (else there is no state to clean)."""
    return sys.modules.get("keras")


@pytest.fixture(autouse=True)
def _clean_keras_state():
    """Every test starts and ends with the float32 policy and a fresh Keras session."""
    if _keras() is not None:
        _keras().mixed_precision.set_global_policy("float32")
    yield
    if _keras() is not None:
        _keras().mixed_precision.set_global_policy("float32")
        _keras().backend.clear_session(free_memory=False)  # its gc.collect() took seconds


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """A tiny untrained 2-class U-Net saved as ``.keras``, for the command-line tests."""
    import keras

    from keras_unet import build_unet

    keras.utils.set_random_seed(1)
    path = tmp_path_factory.mktemp("model") / "unet.keras"
    build_unet((None, None, 1), 2, filters=4, depth=2).save(path)
    return path


NAPARI_TESTS = "test_napari"
"""The file-name prefix of the tests that drive a real napari viewer."""


def pytest_collection_modifyitems(config, items):
    """The napari tests run only in a pytest run of their own: with other tests in the process,
    TensorFlow would share it with napari's OpenGL."""
    napari = [item for item in items if item.path.name.startswith(NAPARI_TESTS)]
    if napari and len(napari) < len(items):
        skip = pytest.mark.skip(reason="the napari tests run in a pytest run of their own "
                                       "(TensorFlow and Mesa's OpenGL cannot share a process): "
                                       "pytest tests/test_napari.py, under Xvfb")
        for item in napari:
            item.add_marker(skip)
