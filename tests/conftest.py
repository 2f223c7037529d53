"""Shared test fixtures: quiet TensorFlow, a clean Keras state per test, tiny models."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as quiet as `unet` itself

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_keras_state():
    """Every test starts and ends with the float32 policy and a fresh Keras session."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session(free_memory=False)  # its gc.collect() took seconds per test


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """A tiny untrained 2-class U-Net saved as ``.keras``, for the command-line tests."""
    from keras_unet import build_unet

    keras.utils.set_random_seed(1)
    path = tmp_path_factory.mktemp("model") / "unet.keras"
    build_unet((None, None, 1), 2, filters=4, depth=2).save(path)
    return path
