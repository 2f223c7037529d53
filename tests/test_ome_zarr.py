"""OME-Zarr in and out: planes of level 0, labels with pyramids beside the probabilities, and
`unet predict --input big.ome.zarr --output out.ome.zarr` with its refusals."""

import keras
import numpy as np
import pytest
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Multiscales, Reader
from ome_zarr.writer import write_image

from keras_unet import predict_tiled
from keras_unet.class_layout import ClassLayout
from keras_unet.cli import main
from keras_unet.errors import FaultError
from keras_unet.io.zarr_images import (
    PlaneView,
    PredictionStore,
    ZarrImage,
    is_zarr_path,
    open_zarr_image,
)


def _stack(seed=0):
    """c, z, y, x: two planes of one channel."""
    return np.random.default_rng(seed).integers(0, 4000, (1, 2, 48, 72)).astype("uint16")


AXES = [{"name": "c", "type": "channel"}] + [
    {"name": name, "type": "space", "unit": "micrometer"} for name in "zyx"]
SCALE, SHIFT = [1.0, 2.0, 0.5, 0.5], [0.0, 10.0, 0.0, 5.0]  # c, z, y, x: a confocal stack's


@pytest.fixture
def ome_stack(tmp_path):
    path = tmp_path / "stack.ome.zarr"
    group = zarr.open_group(path, mode="w")
    write_image(_stack(), group, axes="czyx", scale_factors=(2,),
                storage_options={"chunks": (1, 1, 32, 32)})
    attributes = group.attrs.asdict()  # the voxel size, origin and units of a confocal stack
    [multiscale] = attributes["ome"]["multiscales"]
    multiscale["axes"] = AXES
    for level, dataset in enumerate(multiscale["datasets"]):
        dataset["coordinateTransformations"] = [
            {"type": "scale", "scale": [1.0, 2.0, 0.5 * 2**level, 0.5 * 2**level]},
            {"type": "translation", "translation": SHIFT}]
    group.attrs.put(attributes)
    return path


def _placement(group) -> tuple[list, list]:
    """Each level's transformations, and the axes with their units, of an OME-Zarr image."""
    attributes = group.attrs.asdict()
    [multiscale] = attributes.get("ome", attributes)["multiscales"]
    return ([level["coordinateTransformations"] for level in multiscale["datasets"]],
            [(axis["name"], axis.get("unit")) for axis in multiscale["axes"]])


def test_an_ome_zarr_stack_is_read_plane_by_plane_at_level_0(ome_stack):
    image = open_zarr_image(ome_stack)
    assert image.ome and image.axes == ("c", "z", "y", "x")
    planes = image.planes()
    assert [index for index, _ in planes] == [{"z": 0}, {"z": 1}]
    assert planes[1][1].shape == (48, 72, 1)
    assert (planes[1][1][5:9, 10:30][..., 0] == _stack()[0, 1, 5:9, 10:30]).all()


def test_plain_zarr_arrays_are_y_x_with_optional_channels_last(tmp_path):
    zarr.create_array(tmp_path / "grey.zarr", shape=(10, 12), dtype="uint8")
    zarr.create_array(tmp_path / "rgb.zarr", shape=(10, 12, 3), dtype="uint8")
    zarr.create_array(tmp_path / "4d.zarr", shape=(2, 2, 10, 12), dtype="uint8")
    assert open_zarr_image(tmp_path / "grey.zarr").axes == ("y", "x")
    assert open_zarr_image(tmp_path / "rgb.zarr").planes()[0][1].shape == (10, 12, 3)
    with pytest.raises(ValueError, match=r"4d.zarr' is a plain zarr array of shape \(2, 2, 10, "
                                         r"12\); a plain array is \(y, x\) or \(y, x, c\)"):
        open_zarr_image(tmp_path / "4d.zarr")


def test_what_is_not_a_store_is_named(tmp_path):
    (tmp_path / "tiffs.zarr").mkdir()
    with pytest.raises(ValueError, match="tiffs.zarr' is not a zarr array or an OME-Zarr"):
        open_zarr_image(tmp_path / "tiffs.zarr")
    with pytest.raises(FileNotFoundError, match="gone.zarr"):
        open_zarr_image(tmp_path / "gone.zarr")
    assert is_zarr_path(tmp_path / "tiffs.zarr") and not is_zarr_path(tmp_path / "a.tif")
    zarr.open_group(tmp_path / "plate.zarr", mode="w").create_group("A")  # no image of its own
    with pytest.raises(ValueError, match=r"plate.zarr' is not .* \(its zarr.json describes "
                                         r"neither; a group of images\? pass one of them\)"):
        open_zarr_image(tmp_path / "plate.zarr")


def test_a_store_whose_metadata_was_cut_short_is_a_fault(tmp_path):
    array = zarr.create_array(tmp_path / "cut.zarr", shape=(40, 40), dtype="uint8")
    array[:] = 1
    metadata = tmp_path / "cut.zarr" / "zarr.json"
    metadata.write_bytes(metadata.read_bytes()[:50])  # a copy that stopped
    with pytest.raises(FaultError, match="cut.zarr': its zarr.json is damaged .*; copy the store"):
        open_zarr_image(tmp_path / "cut.zarr")


def test_a_plane_view_writes_channels_last_into_channels_first():
    target = np.zeros((2, 3, 4, 5))  # z, c, y, x
    view = PlaneView(target, ("z", "c", "y", "x"), {"z": 1})
    view[1:3, 2:4] = np.arange(12).reshape(2, 2, 3)
    assert target[1, :, 1, 2].tolist() == [0, 1, 2] and target[0].sum() == 0


def test_the_store_appears_only_when_complete_with_pyramids_napari_reads(tmp_path):
    image = ZarrImage(tmp_path / "in.zarr", np.zeros((1100, 600)), ("y", "x"),
                      ("space", "space"), True, scale={"y": 0.25, "x": 0.25})
    store = PredictionStore(tmp_path / "out.ome.zarr", image, ClassLayout.of(3), (256, 256),
                            instances=True)
    classes = np.random.default_rng(0).integers(0, 3, (1100, 600)).astype("uint8")
    views = store.views({})
    views["mask"][:, :] = classes
    views["probabilities"][:, :] = np.eye(3, dtype="float32")[classes]
    assert not (tmp_path / "out.ome.zarr").exists()  # only out.ome.zarr.partial so far
    store.finish()
    assert not (tmp_path / "out.ome.zarr.partial").exists()
    nodes = list(Reader(parse_url(str(tmp_path / "out.ome.zarr")))())
    image_node = next(n for n in nodes if any(isinstance(s, Multiscales) for s in n.specs))
    assert [level.shape for level in image_node.data] == [(3, 1100, 600), (3, 550, 300),
                                                          (3, 275, 150)]
    labels = [n for n in nodes if any(isinstance(s, Label) for s in n.specs)]
    assert {n.metadata["name"] for n in labels} == {"mask", "instances"}
    mask = next(n for n in labels if n.metadata["name"] == "mask").data
    assert (np.asarray(mask[1]) == classes[::2, ::2]).all()  # nearest neighbour
    transformations, _ = _placement(zarr.open_group(tmp_path / "out.ome.zarr", mode="r"))
    assert [level[0]["scale"] for level in transformations] == [
        [1.0, 0.25, 0.25], [1.0, 0.5, 0.5], [1.0, 1.0, 1.0]]  # c, y, x: the input's pixel size


def test_an_existing_output_is_refused_and_a_failed_store_is_discarded(tmp_path):
    image = ZarrImage(tmp_path / "in.zarr", np.zeros((20, 20)), ("y", "x"), ("space",) * 2,
                      False)
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        PredictionStore(tmp_path / "taken", image, ClassLayout.of(2), (16, 16))
    with pytest.raises(FileExistsError, match="not a zarr store"):
        PredictionStore(tmp_path / "taken", image, ClassLayout.of(2), (16, 16), overwrite=True)
    with pytest.raises(ValueError, match="lies inside --input"):
        PredictionStore(tmp_path / "in.zarr" / "out", image, ClassLayout.of(2), (16, 16))
    store = PredictionStore(tmp_path / "out.zarr", image, ClassLayout.of(2), (16, 16))
    store.discard()
    assert list(tmp_path.iterdir()) == [tmp_path / "taken"]


def test_unet_predict_writes_an_ome_zarr_beside_the_input(tmp_path, ome_stack, model_file,
                                                         capsys):
    out = tmp_path / "out.ome.zarr"
    arguments = ["predict", "--model", str(model_file), "--input", str(ome_stack), "--output",
                 str(out), "--block-size", "32", "--instances"]
    assert main(arguments) == 0, capsys.readouterr().err
    model = keras.models.load_model(model_file, compile=False)
    result = zarr.open_group(out, mode="r")
    for z in range(2):
        whole = predict_tiled(model, _stack()[0, z])
        probabilities = np.moveaxis(result["0"][:, z], 0, -1)  # c, z, y, x
        assert np.abs(probabilities - whole).max() < 1e-4
        assert (result["labels/mask/0"][z] == probabilities.argmax(-1)).all()
    assert result["labels/instances/0"].shape == (2, 48, 72)
    for group in (result, result["labels/mask"], result["labels/instances"]):
        transformations, axes = _placement(group)  # napari lays them over the input
        units = [(name, "micrometer") for name in "zyx"]
        assert axes == ([("c", None)] if group is result else []) + units
        first = [1.0] if group is result else []  # the probabilities' c axis
        assert transformations[0] == [
            {"type": "scale", "scale": first + SCALE[1:]},
            {"type": "translation", "translation": [0.0] * len(first) + SHIFT[1:]}]
    assert main(arguments) == 2  # exists now
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(arguments + ["--overwrite"]) == 0


def test_unet_predict_refuses_bad_zarr_input_leaving_nothing(tmp_path, model_file, capsys):
    zarr.create_array(tmp_path / "rgb.zarr", shape=(40, 40, 3), dtype="uint8")
    (tmp_path / "tiffs.zarr").mkdir()
    base = ["predict", "--model", str(model_file), "--output", str(tmp_path / "out.zarr")]
    cases = {"rgb.zarr": "but the model takes", "tiffs.zarr": "is not a zarr array"}
    for name, message in cases.items():
        assert main(base + ["--input", str(tmp_path / name)]) == 2
        assert message in capsys.readouterr().err
    assert main(base + ["--input", str(tmp_path / "a.png"), "--scheduler", "tcp://x:1"]) == 2
    assert "--scheduler applies to zarr" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rgb.zarr", "tiffs.zarr"]
