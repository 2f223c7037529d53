"""`unet predict --instances`: label images napari, Fiji and CellProfiler open, checked early."""

import keras
import numpy as np
import pytest
import tifffile
from PIL import Image

from keras_unet import build_unet, predict_tiled
from keras_unet.cli import main
from keras_unet.cli import predict as predict_cli
from keras_unet.instances import instance_labels
from keras_unet.io.images import write_instances


def _grey(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 200, shape).astype("uint8")


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(2)
    for classes in (2, 3):
        build_unet((None, None, 1), classes, filters=4, depth=2).save(
            folder / f"unet{classes}.keras")
    return folder


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(_grey((37, 53))).save(folder / "a.png")
    tifffile.imwrite(folder / "b.tif", _grey((40, 30), 1))
    return folder


def _predict(model, images, out, *extra):
    return main(["predict", "--model", str(model), "--input", str(images), "--output", str(out),
                 "--instances", *extra])


@pytest.mark.parametrize("classes", [2, 3])
def test_instances_are_written_as_uint16_label_tiffs(tmp_path, images, model_files, classes,
                                                     capsys):
    out = tmp_path / "out"
    assert _predict(model_files / f"unet{classes}.keras", images, out) == 0, \
        capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_instances.tif", "b.tif",
                                                     "b_instances.tif"]
    model = keras.models.load_model(model_files / f"unet{classes}.keras", compile=False)
    for name, image in (("a", _grey((37, 53))), ("b", _grey((40, 30), 1))):
        labels = tifffile.imread(out / f"{name}_instances.tif")
        assert labels.dtype == np.uint16 and labels.shape == image.shape
        count = instance_labels(predict_tiled(model, image)).max()
        assert count > 0 and labels.max() == count
        assert set(np.unique(labels)) - {0} == set(range(1, count + 1))


def test_instances_are_those_of_instance_labels(tmp_path, images, model_files):
    out = tmp_path / "out"
    assert _predict(model_files / "unet2.keras", images, out, "--instance-method", "watershed",
                    "--min-size", "0") == 0
    model = keras.models.load_model(model_files / "unet2.keras", compile=False)
    expected = instance_labels(predict_tiled(model, _grey((37, 53))), method="watershed",
                               min_size=0)
    np.testing.assert_array_equal(tifffile.imread(out / "a_instances.tif"), expected)


def test_more_than_65535_objects_are_written_as_uint32(tmp_path):
    labels = np.arange(70_000, dtype=np.int32).reshape(280, 250)
    write_instances(tmp_path / "many.tif", labels)
    back = tifffile.imread(tmp_path / "many.tif")
    assert back.dtype == np.uint32 and back.max() == 69_999
    np.testing.assert_array_equal(back, labels)
    with pytest.raises(ValueError, match="integers"):
        write_instances(tmp_path / "bad.tif", -labels)


def test_existing_instance_files_are_refused_before_the_model_loads(tmp_path, images, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b_instances.tif").write_bytes(b"keep me")
    (tmp_path / "never-loaded.keras").write_text("the outputs are refused before it loads")
    assert _predict(tmp_path / "never-loaded.keras", images, out) == 2
    err = capsys.readouterr().err
    assert "b_instances.tif" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert (out / "b_instances.tif").read_bytes() == b"keep me"


def test_a_negative_min_size_is_refused_before_the_model_loads(tmp_path, images, capsys):
    assert _predict(tmp_path / "no-such-model.keras", images, tmp_path / "out",
                    "--min-size", "-1") == 2
    err = capsys.readouterr().err
    assert err.strip() == "unet predict: error: --min-size must be >= 0 (pixels), got -1."


def test_instances_of_a_semantic_model_are_refused_in_one_line_before_any_work(tmp_path, images,
                                                                              capsys):
    build_unet((None, None, 1), 4, filters=4, depth=2).save(tmp_path / "tissue.keras")
    assert _predict(tmp_path / "tissue.keras", images, tmp_path / "out", "--instances") == 2
    err = capsys.readouterr().err
    assert err == (f"unet predict: error: --instances needs a model of cells (2 or 3 classes); "
                   f"--model '{tmp_path / 'tissue.keras'}' has 4 semantic classes.\n")
    assert not (tmp_path / "out").exists()


def test_streamed_tiffs_get_no_instances_and_say_so(tmp_path, model_files, monkeypatch,
                                                    capsys):
    monkeypatch.setattr(predict_cli, "STREAM_PIXELS", 1000)
    source = tmp_path / "big.tif"
    tifffile.imwrite(source, _grey((50, 70)))
    out = tmp_path / "out"
    assert _predict(model_files / "unet2.keras", source, out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["big.tif"]
    assert "no instances for" in capsys.readouterr().err


def test_help_shows_the_instance_options_and_their_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--instances" in text and "(default: what the model carries, else auto)" in text
    assert "(default: what the model carries, else 10)" in text
    assert "{auto,components,watershed,membranes}" in text


