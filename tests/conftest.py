"""Shared test fixtures: quiet TensorFlow, a clean Keras state per test, tiny models."""

import os
import pathlib
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as quiet as `unet` itself

import keras  # noqa: E402
import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
CACHES = ("__pycache__", ".pytest_cache", ".ruff_cache", ".venv", ".egg-info")


def _project_files() -> set[str]:
    """Every file git does not track in the checkout, ignored ones included, but the caches."""
    listed = subprocess.run(["git", "status", "--porcelain", "--ignored",
                             "--untracked-files=all"], cwd=ROOT, capture_output=True,
                            text=True).stdout.splitlines()
    return {line[3:] for line in listed
            if line[:2] in ("??", "!!") and not any(cache in line for cache in CACHES)}


@pytest.fixture(scope="session", autouse=True)
def _the_tests_leave_nothing_behind():
    """No test writes into the project tree or the working directory (issue 23)."""
    before, cwd, in_cwd = _project_files(), os.getcwd(), set(os.listdir())
    yield
    assert os.getcwd() == cwd
    left = sorted((_project_files() - before) | (set(os.listdir()) - in_cwd))
    assert left == [], f"tests left files in the project or the working directory: {left}"


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
