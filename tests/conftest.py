"""Shared test fixtures: quiet TensorFlow, a clean Keras state per test, tiny models.

Keras is not imported here: the napari tests (test_napari.py) run napari's OpenGL viewer, which
cannot share a process with TensorFlow (keras_unet/napari/model_process.py), so nothing may load
it in their process. The Keras state is cleaned wherever a test has loaded Keras.
"""

import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as quiet as `unet` itself

import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
CACHES = ("__pycache__", ".pytest_cache", ".ruff_cache", ".venv", ".egg-info")


def _project_files() -> set[str]:
    """What git sees in the checkout beyond its commits (new, ignored, changed or deleted
    files, each with its status), but the caches."""
    listed = subprocess.run(["git", "status", "--porcelain", "--ignored",
                             "--untracked-files=all"], cwd=ROOT, capture_output=True,
                            text=True).stdout.splitlines()
    return {line for line in listed if not any(cache in line for cache in CACHES)}


@pytest.fixture(scope="session", autouse=True)
def _the_tests_leave_nothing_behind():
    """No test writes into the project tree (new files or changed ones) or the working
    directory (issue 23)."""
    before, cwd, in_cwd = _project_files(), os.getcwd(), set(os.listdir())
    yield
    assert os.getcwd() == cwd
    left = sorted((_project_files() - before) | (set(os.listdir()) - in_cwd))
    assert left == [], f"tests left files in the project or the working directory: {left}"


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


@pytest.fixture
def em_folder(tmp_path):
    """Writes ``count`` synthetic cell images of ``size`` px as ``em/images`` and binary
    ``em/masks`` PNGs, the folder a user passes as ``--data``, and returns it."""

    def write(count: int, size: int) -> pathlib.Path:
        from PIL import Image

        from keras_unet.data import synthetic_cells

        data = tmp_path / "em"
        for name in ("images", "masks"):
            (data / name).mkdir(parents=True)
        for index, sample in enumerate(synthetic_cells(count, size=size)):
            Image.fromarray(sample.image).save(data / "images" / f"{index}.png")
            Image.fromarray(((sample.labels > 0) * 255).astype("uint8")).save(
                data / "masks" / f"{index}.png")
        return data

    return write


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


@pytest.fixture
def bioimageio_core_sandbox(tmp_path, monkeypatch):
    """Where ``bioimageio.core.test_model`` may run: it unzips SavedModel bundles into the
    working directory (here a temporary one) and sets ``TF_ENABLE_ONEDNN_OPTS=0`` for good,
    which processes started later in this one (a dask cluster's workers) would inherit and then
    compute without oneDNN (restored after the test)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1"))
    return tmp_path
