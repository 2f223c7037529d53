"""A bioimage.io zip written by ``unet export`` opens as a Network like the model it came from:
its ONNX weights predict as ``predict_tiled`` of the Keras model, with the classes and the cell
settings the package's rdf.yaml records; what is not such a package is refused in one line."""

import re
import zipfile

import numpy as np
import pytest
import yaml

from keras_unet import build_unet, predict_tiled
from keras_unet.inference import load_network
from keras_unet.instances.settings import CellSettings
from keras_unet.serving.bioimageio import PackageInfo, export_bioimageio


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """(model, zip): a 3-class depth-2 U-Net that records its cell settings."""
    model = build_unet((None, None, 1), 3, filters=4, depth=2, class_names=["bg", "inner", "ring"])
    model.record_cells(CellSettings("membranes", 30))
    return model, export_bioimageio(model, tmp_path_factory.mktemp("zoo"),
                                    PackageInfo(name="loading test"))


def test_a_package_predicts_as_its_keras_model_with_its_classes_and_cells(package):
    model, path = package
    network = load_network(path)
    assert network.kind == "bioimageio" and network.notes == ()
    assert network.layout.class_names == ("bg", "inner", "ring") and network.channels == 1
    assert network.cells.options == {"method": "membranes", "min_size": 30}
    assert network.cells.source == "the model"
    image = np.random.default_rng(5).integers(0, 255, (45, 61)).astype("uint8")
    np.testing.assert_allclose(network.predict(image), predict_tiled(model, image), atol=2e-4)


def _rewritten(source, target, rdf_edit=None, drop=()):
    """A copy of the package ``source`` with its rdf.yaml edited or some files left out."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copy:
        for name in original.namelist():
            if name in drop:
                continue
            data = original.read(name)
            if name == "rdf.yaml" and rdf_edit is not None:
                rdf = yaml.safe_load(data)
                rdf_edit(rdf)
                data = yaml.safe_dump(rdf).encode()
            copy.writestr(name, data)
    return target


@pytest.mark.parametrize("make, message", [
    (lambda source, tmp: tmp.joinpath("notes.zip").write_text("no zip") and tmp / "notes.zip",
     "is not a zip archive"),
    (lambda source, tmp: _rewritten(source, tmp / "bare.zip", drop=("rdf.yaml",)),
     "is not a bioimage.io package (no rdf.yaml)"),
    (lambda source, tmp: _rewritten(source, tmp / "foreign.zip",
                                    lambda rdf: rdf["config"].pop("keras_unet")),
     "a bioimage.io package that unet export did not write"),
    (lambda source, tmp: _rewritten(source, tmp / "no_onnx.zip", drop=("model.onnx",)),
     "has no ONNX weights inside the package"),
])
def test_what_is_not_a_package_of_ours_is_named_in_one_line(package, tmp_path, make, message):
    path = make(package[1], tmp_path)
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        load_network(path)
    assert str(error.value).startswith(f"--model {str(path)!r}") and "\n" not in str(error.value)
