"""The bioimage.io package, checked by the format's own tools: bioimageio.spec and .core.

One tiny model is packaged once per module; bioimageio.core then runs each weight format on the
package's test tensors, as the BioImage Model Zoo's CI does.
"""

import zipfile

import numpy as np
import pytest
import yaml

from keras_unet import build_unet, geometry
from keras_unet.inference.network import model_geometry
from keras_unet.instances.settings import CellSettings
from keras_unet.normalization import MIN_STD, normalize_image
from keras_unet.serving.bioimageio import (
    PAPER_DOI,
    PackageInfo,
    check_package_target,
    export_bioimageio,
    validate_package,
)

INFO = PackageInfo(name="tiny test U-Net", authors=("A. Tester", "B. Tester"), license="MIT",
                   training_config={"epochs": 3, "depth": 2})


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """(model, zip path, rdf as a dict): a 3-class depth-2 valid-padding U-Net."""
    model = build_unet((None, None, 1), 3, filters=4, depth=2)
    model.record_cells(CellSettings("membranes", 30))
    path = export_bioimageio(model, tmp_path_factory.mktemp("zoo"), INFO)
    with zipfile.ZipFile(path) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
    return model, path, rdf


def test_the_package_holds_every_file_the_issue_lists(package):
    _, path, rdf = package
    names = set(zipfile.ZipFile(path).namelist())
    assert {"rdf.yaml", "README.md", "cover.png", "test_input.npy", "test_output.npy",
            "model.onnx", "tf_saved_model_bundle.zip", "training_config.yaml"} <= names
    assert rdf["format_version"].startswith("0.5.") and rdf["type"] == "model"
    assert rdf["name"] == INFO.name and rdf["license"] == "MIT"
    assert [a["name"] for a in rdf["authors"]] == list(INFO.authors)
    assert rdf["cite"][0]["doi"] == PAPER_DOI
    assert rdf["documentation"]["source"] == "README.md"
    assert rdf["covers"][0]["source"] == "cover.png"
    assert "0 background, 1 cell, 2 border" in rdf["description"]
    assert rdf["config"]["keras_unet"]["training"] == INFO.training_config
    assert rdf["config"]["keras_unet"]["cells"] == CellSettings("membranes", 30).to_json()
    assert yaml.safe_load(zipfile.ZipFile(path).read("training_config.yaml")) == {
        "epochs": 3, "depth": 2}
    weights = rdf["weights"]
    assert set(weights) == {"onnx", "tensorflow_saved_model_bundle"}
    assert weights["tensorflow_saved_model_bundle"]["tensorflow_version"].startswith("2.")


def test_axes_sizes_and_processing_follow_the_geometry(package):
    model, _, rdf = package
    geom = model_geometry(model)
    (inputs,), (outputs,) = rdf["inputs"], rdf["outputs"]
    assert [axis["type"] for axis in inputs["axes"]] == ["batch", "space", "space", "channel"]
    assert [axis.get("id") for axis in inputs["axes"][1:3]] == ["y", "x"]
    size = inputs["axes"][1]["size"]
    valid = [n for n in range(1, 200) if _fits(n, geom.depth)]
    assert [size["min"] + k * size["step"] for k in range(len(valid))] == valid  # all, only
    for axis in outputs["axes"][1:3]:
        assert axis["size"] == {"tensor_id": inputs["id"], "axis_id": axis["id"],
                                "offset": -2 * geom.border}
    assert outputs["axes"][3]["channel_names"] == list(geom.class_names)
    (normalise,) = [step for step in inputs["preprocessing"]
                    if step["id"] == "zero_mean_unit_variance"]
    assert normalise["kwargs"]["axes"] == ["y", "x"]
    assert float(normalise["kwargs"]["eps"]) == MIN_STD  # YAML 1.2 writes 1e-06
    assert [step["id"] for step in outputs["postprocessing"]] == ["ensure_dtype"]  # softmax in


def _fits(size, depth):
    try:
        geometry.output_size(size, depth)
    except ValueError:
        return False
    return True


def test_test_tensors_are_the_model_on_the_normalised_input(package):
    model, path, _ = package
    with zipfile.ZipFile(path) as archive:
        test_input = np.load(archive.open("test_input.npy"))
        test_output = np.load(archive.open("test_output.npy"))
    assert test_input.dtype == test_output.dtype == np.float32
    np.testing.assert_allclose(test_output, model(normalize_image(test_input)).numpy(),
                               atol=1e-5)


def test_bioimageio_spec_validates_with_only_the_maintainer_warning(package):
    assert validate_package(package[1]) == [
        ": Missing `maintainers` or any author in `authors` with a specified `github_user` name."]


def test_bioimageio_core_runs_each_weight_format_on_the_test_tensors(package,
                                                                     bioimageio_core_sandbox):
    from bioimageio.core import test_model

    for weight_format in ("onnx", "tensorflow_saved_model_bundle"):
        summary = test_model(package[1], weight_format=weight_format)
        assert summary.status == "passed", summary.format()


@pytest.mark.parametrize("info, match", [
    (PackageInfo(name="my/unet"), "--name 'my/unet': .*is not restricted to"),
    (PackageInfo(name="unet"), "--name 'unet': must have at least 5 characters, not 4$"),
    (PackageInfo(license="MITT"), "--license 'MITT': Input should be"),
    (PackageInfo(authors=("a/b",)), "--author 'a/b'"),
    (PackageInfo(authors=()), "--author: give at least one author name"),
])
def test_options_the_spec_forbids_are_refused_before_writing(info, match, tmp_path):
    model = build_unet((None, None, 1), 2, filters=4, depth=2)
    with pytest.raises(ValueError, match=match):
        export_bioimageio(model, tmp_path / "zoo", info)
    assert not (tmp_path / "zoo").exists()


def test_out_may_name_the_zip_whose_folder_is_made(tmp_path):
    model = build_unet((None, None, 1), 2, filters=4, depth=2)
    path = export_bioimageio(model, tmp_path / "models" / "cells.zip", INFO)
    assert path == tmp_path / "models" / "cells.zip"
    assert sorted(p.name for p in path.parent.iterdir()) == ["cells.zip"]
    assert "rdf.yaml" in zipfile.ZipFile(path).namelist()  # validated before it was renamed
    with pytest.raises(FileExistsError, match="already exists; pass --overwrite"):
        check_package_target(path, "another U-Net")
    assert check_package_target(path, "another U-Net", overwrite=True) == path


def test_a_folder_holding_a_package_is_refused_unless_overwrite(package, tmp_path):
    _, path, _ = package
    with pytest.raises(FileExistsError, match=r"already holds a bioimage.io package \(tiny_test"):
        check_package_target(path.parent, "another U-Net")
    assert check_package_target(path.parent, INFO.name, overwrite=True) == path
    (tmp_path / "notes.zip").write_bytes(b"not a zip")
    assert check_package_target(tmp_path, INFO.name).parent == tmp_path  # not a package
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        check_package_target(tmp_path / "file", INFO.name)
