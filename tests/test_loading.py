"""One way to open a model: a ``.keras`` file, keras_unet's SavedModel, a foreign SavedModel and
an ONNX file all open as a Network that predicts an image of any size alike."""

import numpy as np
import pytest

from keras_unet import build_unet, predict_tiled
from keras_unet.errors import FaultError
from keras_unet.inference import load_network
from keras_unet.inference.tta import averaged_image
from keras_unet.serving import export_for_serving
from keras_unet.serving.onnx_export import export_onnx


def _image():
    return np.random.default_rng(5).integers(0, 255, (45, 61)).astype("uint8")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    model = build_unet((None, None, 1), 3, filters=4, depth=2, class_names=["bg", "in", "ring"])
    model.save(folder / "unet.keras")
    served = export_for_serving(model, folder / "served", warmup=False)
    foreign = build_unet((None, None, 1), 2, filters=4, depth=2, padding="same")
    foreign.export(folder / "foreign", verbose=False)
    onnx = export_onnx(model, folder / "unet.onnx")
    return {"model": model, "foreign_model": foreign, "keras": folder / "unet.keras",
            "savedmodel": served, "onnx": onnx, "foreign": folder / "foreign"}


@pytest.mark.parametrize("kind", ["keras", "savedmodel", "onnx"])
def test_every_kind_of_file_predicts_as_predict_tiled_and_knows_its_classes(files, kind):
    network = load_network(files[kind])
    assert network.kind == kind and network.notes == ()
    assert network.layout.class_names == ("bg", "in", "ring") and network.channels == 1
    expected = predict_tiled(files["model"], _image())
    np.testing.assert_allclose(network.predict(_image()), expected, atol=2e-4)


def test_tta_of_a_savedmodel_is_the_one_tta_of_the_whole_image(files):
    network = load_network(files["savedmodel"])
    expected = averaged_image(lambda image: network.predict(image), _image()[..., None])
    np.testing.assert_allclose(network.predict(_image(), tta=True), expected, atol=1e-6)


def test_a_foreign_savedmodel_opens_with_a_note_of_what_is_assumed(files):
    network = load_network(files["foreign"])
    [note] = network.notes
    assert "was not exported by keras_unet" in note and network.geometry is None
    image = np.random.default_rng(6).integers(0, 255, (48, 64)).astype("uint8")
    expected = np.asarray(files["foreign_model"](image[None, ..., None].astype("float32"))[0])
    np.testing.assert_allclose(network.predict(image), expected, atol=1e-5)


def test_options_a_network_cannot_take_are_refused_before_any_work(files):
    with pytest.raises(ValueError, match="^--tile-size 50: input size 50 does not fit"):
        load_network(files["keras"]).check_options(tile_size=50)
    with pytest.raises(ValueError, match="SavedModel, which tiles itself"):
        load_network(files["savedmodel"]).check_options(tile_size=92)
    with pytest.raises(ValueError, match="--batch-size must be a positive integer"):
        load_network(files["onnx"]).check_options(batch_size=0)


@pytest.mark.parametrize("name, message", [
    ("missing.keras", "does not exist"),
    ("notes.keras", "is not a Keras model"),
    ("folder", "is a folder without saved_model.pb"),
    ("bad.onnx", "cannot be loaded by onnxruntime"),
])
def test_what_is_not_a_model_is_named_in_one_line(tmp_path, name, message):
    (tmp_path / "notes.keras").write_text("not a model")
    (tmp_path / "folder").mkdir()
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises((ValueError, FileNotFoundError), match=message) as error:
        load_network(tmp_path / name, option="--init")
    assert str(error.value).startswith("--init ") and "\n" not in str(error.value)


@pytest.mark.parametrize("kind, damage", [("keras", "truncated"), ("keras", "corrupt member"),
                                          ("onnx", "truncated"), ("zip", "truncated")])
def test_a_damaged_model_file_is_a_fault_in_one_line(files, tmp_path, kind, damage):
    """A truncated download or copy is not the user's mistake: `unet` says so, exit code 1."""
    data = bytearray(files["onnx" if kind == "onnx" else "keras"].read_bytes())
    if damage == "truncated":
        data = data[:len(data) // 2]
    else:  # a few bytes flipped inside the weights: the zip's directory is intact
        middle = len(data) // 2
        data[middle:middle + 8] = bytes(255 - byte for byte in data[middle:middle + 8])
    path = tmp_path / f"damaged.{kind}"
    path.write_bytes(bytes(data))
    with pytest.raises(FaultError, match=f"^--model '{path}' (is a damaged zip archive|cannot "
                                         "be read as an ONNX file)") as error:
        load_network(path)
    assert "\n" not in str(error.value) and "again" in str(error.value)
