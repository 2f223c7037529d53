"""`unet predict`: outputs, and clear refusals of bad input (`unet evaluate`: test_cli_evaluate)."""


import keras
import numpy as np
import pytest
import tifffile
from PIL import Image

from keras_unet import build_unet, predict_tiled
from keras_unet.class_layout import mask_from_probabilities
from keras_unet.cli import main
from keras_unet.cli import predict as predict_cli


def _grey(shape, seed=0, dtype="uint8"):
    return np.random.default_rng(seed).integers(0, 200, shape).astype(dtype)


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(_grey((37, 53))).save(folder / "a.png")
    tifffile.imwrite(folder / "b.tif", _grey((40, 30), 1, "uint16"))
    return folder


def _expected_mask(model_file, image):
    model = keras.models.load_model(model_file, compile=False)
    return mask_from_probabilities(predict_tiled(model, image))


def test_predict_writes_masks_probabilities_and_overlays(tmp_path, images, model_file, capsys):
    out = tmp_path / "out"
    code = main(["predict", "--model", str(model_file), "--input", str(images), "--output",
                 str(out), "--probabilities", "--overlays"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [
        "a.png", "a_overlay.png", "a_probabilities.tif",
        "b.tif", "b_overlay.png", "b_probabilities.tif"]
    mask = np.asarray(Image.open(out / "a.png"))
    assert mask.dtype == np.uint8 and mask.shape == (37, 53)
    np.testing.assert_array_equal(mask, _expected_mask(model_file, _grey((37, 53))))
    tiff_mask = tifffile.imread(out / "b.tif")
    np.testing.assert_array_equal(tiff_mask, _expected_mask(model_file, _grey((40, 30), 1,
                                                                              "uint16")))
    probabilities = tifffile.imread(out / "b_probabilities.tif")
    assert probabilities.shape == (40, 30, 2) and probabilities.dtype == np.float32
    assert np.asarray(Image.open(out / "a_overlay.png")).shape == (37, 53, 3)


def test_overlays_of_colour_images_keep_their_colours(tmp_path, capsys):
    """An H&E image's overlay shows it pink and purple under the outlines, not grey."""
    keras.utils.set_random_seed(3)
    model = tmp_path / "rgb.keras"
    build_unet((None, None, 3), 2, filters=4, depth=2).save(model)
    rng = np.random.default_rng(4)
    pink, purple = np.array([230, 150, 200]), np.array([90, 40, 140])
    image = np.where(rng.random((40, 48, 1)) < 0.5, pink, purple).astype("uint8")
    (tmp_path / "in").mkdir()
    Image.fromarray(image).save(tmp_path / "in" / "he.png")
    assert main(["predict", "--model", str(model), "--input", str(tmp_path / "in"), "--output",
                 str(tmp_path / "out"), "--overlays"]) == 0, capsys.readouterr().err
    overlay = np.asarray(Image.open(tmp_path / "out" / "he_overlay.png")).astype(int)
    outlined = (overlay == [255, 255, 0]).all(-1)
    shown = {tuple(pixel) for pixel in overlay[~outlined]}  # stretched from 40-230 to 0-255
    assert shown == {(255, 148, 215), (67, 0, 134)}


def test_predict_streams_large_tiffs(tmp_path, model_file, monkeypatch):
    monkeypatch.setattr(predict_cli, "STREAM_PIXELS", 1000)
    source = tmp_path / "big.tif"
    tifffile.imwrite(source, _grey((50, 70)))
    assert main(["predict", "--model", str(model_file), "--input", str(source), "--output",
                 str(tmp_path / "out"), "--tta"]) == 0
    mask = tifffile.imread(tmp_path / "out" / "big.tif")
    assert mask.shape == (50, 70) and set(np.unique(mask)) <= {0, 255}


def test_predict_goes_on_past_bad_images_and_fails_at_the_end(tmp_path, images, model_file,
                                                              capsys):
    (images / "broken.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((20, 20, 3), "uint8")).save(images / "colour.png")
    out = tmp_path / "out"
    code = main(["predict", "--model", str(model_file), "--input", str(images), "--output",
                 str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.png" in err and "cannot read" in err
    assert "colour.png" in err and "(20, 20, 3)" in err and "(height, width, 1)" in err
    assert "2 of 4 image(s) failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.tif"]


def _save_plain_conv_model(path):
    inputs = keras.Input((None, None, 1))
    keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs)).save(path)


@pytest.mark.parametrize("make_model, match", [
    (lambda p: p.write_text("hello"), "is not a Keras model: a .keras file is a zip archive"),
    (lambda p: None, "does not exist"),
    (_save_plain_conv_model, "no MaxPooling2D"),
])
def test_predict_rejects_bad_models(tmp_path, images, capsys, make_model, match):
    model = tmp_path / "model.keras"
    make_model(model)
    code = main(["predict", "--model", str(model), "--input", str(images), "--output",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and match in err and "model.keras" in err
    assert not (tmp_path / "out").exists()


def test_predict_refuses_folder_without_model_files(tmp_path, images, capsys):
    (tmp_path / "folder").mkdir()
    code = main(["predict", "--model", str(tmp_path / "folder"), "--input", str(images),
                 "--output", str(tmp_path / "out")])
    assert code == 2 and "saved_model.pb" in capsys.readouterr().err


def test_predict_refuses_empty_folder(tmp_path, model_file, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    code = main(["predict", "--model", str(model_file), "--input", str(tmp_path / "empty"),
                 "--output", str(tmp_path / "out")])
    assert code == 2 and "has no images" in capsys.readouterr().err


def test_predict_never_overwrites_inputs(tmp_path, images, model_file, capsys):
    before = (images / "a.png").read_bytes()
    code = main(["predict", "--model", str(model_file), "--input", str(images), "--output",
                 str(images), "--overwrite"])
    assert code == 2 and "is --input" in capsys.readouterr().err
    code = main(["predict", "--model", str(model_file), "--input", str(images / "a.png"),
                 "--output", str(images)])
    assert code == 2
    assert (images / "a.png").read_bytes() == before
    assert sorted(p.name for p in images.iterdir()) == ["a.png", "b.tif"]


def test_predict_refuses_existing_masks_unless_overwrite(tmp_path, images, model_file, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.tif").write_bytes(b"old mask")
    args = ["predict", "--model", str(model_file), "--input", str(images), "--output", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "b.tif" in err and "--overwrite" in err
    assert (out / "b.tif").read_bytes() == b"old mask" and not (out / "a.png").exists()
    assert main(args + ["--overwrite"]) == 0
    assert tifffile.imread(out / "b.tif").shape == (40, 30)


def test_predict_refuses_name_clashes(tmp_path, images, model_file, capsys):
    Image.fromarray(_grey((10, 10))).save(images / "a.jpg")  # a.jpg and a.png -> a.png
    code = main(["predict", "--model", str(model_file), "--input", str(images), "--output",
                 str(tmp_path / "out")])
    assert code == 2 and "would both write" in capsys.readouterr().err


def test_predict_with_a_savedmodel(tmp_path, capsys):
    model = build_unet((None, None, 1), 2, filters=4, depth=2, padding="same")
    model.export(tmp_path / "saved", verbose=False)
    image = _grey((48, 64))
    Image.fromarray(image).save(tmp_path / "x.png")
    code = main(["predict", "--model", str(tmp_path / "saved"), "--input",
                 str(tmp_path / "x.png"), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "was not exported by keras_unet" in err and "raw pixels" in err  # says what it assumes
    expected = mask_from_probabilities(model(image[None, ..., None].astype("float32"))[0])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "x.png")), expected)


def test_a_keras_unet_savedmodel_and_its_keras_file_give_the_same_mask(tmp_path, model_file,
                                                                       capsys):
    import keras

    from keras_unet.serving import export_for_serving

    saved = export_for_serving(keras.models.load_model(model_file), tmp_path / "export")
    Image.fromarray(_grey((45, 61))).save(tmp_path / "x.png")
    masks = []
    for name, model in (("keras", model_file), ("saved", saved)):
        code = main(["predict", "--model", str(model), "--input", str(tmp_path / "x.png"),
                     "--output", str(tmp_path / name)])
        err = capsys.readouterr().err
        assert code == 0 and "not exported by keras_unet" not in err, err
        masks.append(np.asarray(Image.open(tmp_path / name / "x.png")))
    np.testing.assert_array_equal(masks[0], masks[1])
