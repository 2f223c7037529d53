"""A 3D U-Net on ONNX and in a bioimage.io package: the z axis with its valid sizes, the test
tensors, and bioimageio.core running both weight formats; TensorBoard's slice of volume tiles."""

import zipfile

import keras
import numpy as np
import pytest
import yaml

from keras_unet import build_unet, geometry, predict_tiled
from keras_unet.inference.network import model_geometry
from keras_unet.normalization import normalize_image
from keras_unet.serving.bioimageio import PackageInfo, export_bioimageio
from keras_unet.serving.onnx_export import export_onnx
from keras_unet.serving.onnx_network import OnnxNetwork
from keras_unet.visualize import validation_panel


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(9)
    return build_unet((None, None, None, 1), 2, filters=2, depth=2, spacing=(2.0, 1.0, 1.0))


def test_onnx_of_a_3d_unet_tiles_volumes_as_keras_does(model, tmp_path):
    network = OnnxNetwork.from_file(export_onnx(model, tmp_path / "v.onnx"))
    assert network.geometry == model_geometry(model)
    (image,) = network.session.get_inputs()
    assert len(image.shape) == 5  # batch, z, y, x, c
    volume = np.random.default_rng(0).random((9, 30, 21)).astype(np.float32)
    np.testing.assert_allclose(predict_tiled(network, volume), predict_tiled(model, volume),
                               atol=1e-5)


@pytest.fixture(scope="module")
def package(model, tmp_path_factory):
    path = export_bioimageio(model, tmp_path_factory.mktemp("zoo"),
                             PackageInfo(name="tiny 3D U-Net", authors=("A. Tester",),
                                         license="MIT"))
    with zipfile.ZipFile(path) as archive:
        return path, yaml.safe_load(archive.read("rdf.yaml"))


def _valid(size, pools, kernels):
    try:
        geometry.output_size(size, 2, pools=pools, kernels=kernels)
    except ValueError:
        return False
    return True


def test_the_package_declares_z_with_its_valid_sizes(model, package):
    path, rdf = package
    geom = model_geometry(model)
    (inputs,), (outputs,) = rdf["inputs"], rdf["outputs"]
    assert [axis["type"] for axis in inputs["axes"]] == ["batch", "space", "space", "space",
                                                         "channel"]
    assert [axis["id"] for axis in inputs["axes"][1:4]] == ["z", "y", "x"]
    for axis, (pools, kernels), border in zip(inputs["axes"][1:4], geom.axis_layouts,
                                              geom.borders):
        size = axis["size"]
        valid = [n for n in range(1, 120) if _valid(n, pools, kernels)]
        assert [size["min"] + k * size["step"] for k in range(len(valid))] == valid
        out = next(o for o in outputs["axes"] if o.get("id") == axis["id"])
        assert out["size"]["offset"] == -2 * border
    assert "3d" in rdf["tags"]
    (normalise,) = [s for s in inputs["preprocessing"] if s["id"] == "zero_mean_unit_variance"]
    assert normalise["kwargs"]["axes"] == ["z", "y", "x"]
    with zipfile.ZipFile(path) as archive:
        test_input = np.load(archive.open("test_input.npy"))
        test_output = np.load(archive.open("test_output.npy"))
    assert test_input.ndim == test_output.ndim == 5
    np.testing.assert_allclose(test_output, model(normalize_image(test_input, ndim=3)).numpy(),
                               atol=1e-5)


@pytest.mark.slow  # bioimageio.core runs both weight formats
def test_bioimageio_core_runs_both_weight_formats_of_the_3d_package(package,
                                                                    bioimageio_core_sandbox):
    from bioimageio.core import test_model

    path, _ = package
    summary = test_model(path)
    assert summary.status == "passed", summary.format()


def test_tensorboard_shows_the_middle_plane_of_volume_tiles():
    images = np.zeros((2, 12, 44, 44, 1), np.float32)
    images[:, 6, 20:24, 20:24] = 1.0  # the plane level with output plane 2 of 4
    labels = np.zeros((2, 4, 4, 4), np.int32)
    labels[:, 2] = 1
    probabilities = np.eye(2)[labels]
    panel = validation_panel(images, labels, probabilities, np.ones((2, 4, 4, 4)))
    flat = validation_panel(images[:, 6], labels[:, 2], probabilities[:, 2],
                            np.ones((2, 4, 4)))
    np.testing.assert_array_equal(panel, flat)
