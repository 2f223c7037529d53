"""One class layout for every output: a K-class prediction reads back as the same classes from
the PNG and TIFF masks, the OME-Zarr labels, the served signatures, the overlays and the scores.
"""

import io

import keras
import numpy as np
import pytest
import tensorflow as tf
import tifffile
import zarr
from PIL import Image

from keras_unet import build_unet, predict_tiled
from keras_unet.class_layout import mask_from_probabilities, predicted_classes
from keras_unet.cli import main
from keras_unet.instances import instance_labels
from keras_unet.io.images import read_class_mask, write_class_mask
from keras_unet.serving import export_for_serving
from keras_unet.visualize import class_overlay, outline_overlay

SHAPE = (40, 56)


def _image():
    return np.random.default_rng(7).integers(0, 255, SHAPE).astype("uint8")


def _model(num_classes):
    """A random U-Net whose argmax takes several classes (a wide final layer)."""
    keras.utils.set_random_seed(num_classes)
    model = build_unet((None, None, 1), num_classes, filters=4, depth=2)
    final = model.get_layer("final_conv")
    kernel, bias = final.get_weights()
    rng = np.random.default_rng(num_classes)
    final.set_weights([rng.normal(0, 3, kernel.shape).astype("float32"), bias])
    return model


@pytest.fixture(scope="module", params=[2, 3, 5], ids=["K2", "K3", "K5"])
def case(request, tmp_path_factory):
    """(model file, its layout, the image's probabilities, a folder with the image as PNG,
    TIFF and zarr)."""
    folder = tmp_path_factory.mktemp(f"k{request.param}")
    model = _model(request.param)
    model.save(folder / "unet.keras")
    image = _image()
    (folder / "in").mkdir()
    Image.fromarray(image).save(folder / "in" / "a.png")
    tifffile.imwrite(folder / "in" / "b.tif", image)
    zarr.create_array(folder / "in.zarr", shape=SHAPE, chunks=(32, 32), dtype="uint8")[:] = image
    probabilities = predict_tiled(model, image)
    return folder, model, model.layout, probabilities


def _decided(probabilities, margin=1e-3):
    """Pixels whose top class leads the next by more than float differences between paths."""
    top2 = np.sort(probabilities, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0] > margin


def test_the_layouts_are_the_ones_the_masks_promise(case):
    _, _, layout, probabilities = case
    values = {2: [0, 255], 3: [0, 127, 254], 5: [0, 1, 2, 3, 4]}[layout.num_classes]
    assert (layout.encode(np.arange(layout.num_classes)).tolist(), layout.labels) == (
        values, "semantic" if layout.num_classes == 5 else "instances")
    classes = predicted_classes(probabilities)
    assert len(np.unique(classes)) >= 2  # the test sees more than one class
    np.testing.assert_array_equal(layout.decode(mask_from_probabilities(probabilities)), classes)


def test_cli_masks_overlays_and_zarr_labels_hold_the_argmax(case, capsys):
    folder, _, layout, probabilities = case
    classes = predicted_classes(probabilities)
    out = folder / "out"
    assert main(["predict", "--model", str(folder / "unet.keras"), "--input", str(folder / "in"),
                 "--output", str(out), "--overlays", "--overwrite"]) == 0, capsys.readouterr()
    for name in ("a.png", "b.tif"):
        np.testing.assert_array_equal(read_class_mask(out / name, layout), classes)
    overlay = np.asarray(Image.open(out / "a_overlay.png"))
    if layout.cells:
        expected = outline_overlay(_image(), instance_labels(probabilities))
    else:
        expected = class_overlay(_image(), classes)
    np.testing.assert_array_equal(overlay, expected)
    assert main(["predict", "--model", str(folder / "unet.keras"), "--input",
                 str(folder / "in.zarr"), "--output", str(folder / "out.ome.zarr"),
                 "--overwrite"]) == 0, capsys.readouterr()
    stored = zarr.open_group(folder / "out.ome.zarr", mode="r")
    labels = stored["labels/mask/0"][:]
    decided = _decided(probabilities)
    np.testing.assert_array_equal(labels[decided], classes[decided])
    names = [p["class"] for p in stored["labels/mask"].attrs["ome"]["image-label"]["properties"]]
    assert names == list(layout.class_names)


def test_the_served_labels_and_png_masks_hold_the_argmax(case):
    folder, model, layout, probabilities = case
    served = tf.saved_model.load(str(export_for_serving(model, folder / "served", warmup=False)))
    image = _image()
    raw = served.signatures["serving_default"](image=tf.constant(image[None, ..., None],
                                                                 tf.float32))
    png = served.signatures["encoded"](image_bytes=tf.stack([tf.io.encode_png(image[..., None])]))
    mask = np.asarray(Image.open(io.BytesIO(png["labels_png_bytes"].numpy()[0])))
    classes, decided = predicted_classes(probabilities), _decided(probabilities)
    np.testing.assert_array_equal(raw["labels"].numpy()[0][decided], classes[decided])
    np.testing.assert_array_equal(layout.decode(mask)[decided], classes[decided])


def test_a_mask_file_of_the_argmax_scores_perfectly(case, capsys):
    folder, _, layout, probabilities = case
    classes = predicted_classes(probabilities)
    data = folder / "scored"
    (data / "images").mkdir(parents=True, exist_ok=True)
    (data / "masks").mkdir(exist_ok=True)
    Image.fromarray(_image()).save(data / "images" / "a.png")
    truth = instance_labels(probabilities, min_size=0) if layout.cells else classes
    if layout.cells:
        tifffile.imwrite(data / "masks" / "a.tif", truth.astype("uint16"))
    else:
        write_class_mask(data / "masks" / "a.png", classes, layout, overwrite=True)
    report = folder / "report"
    assert main(["evaluate", "--model", str(folder / "unet.keras"), "--data", str(data),
                 "--report", str(report), "--min-size", "0", "--overwrite"]) == 0
    row = dict(zip(*[line.split(",") for line in
                     (report / "evaluation.csv").read_text().splitlines()[:2]]))
    if layout.cells:
        assert float(row["f1_50"]) == 1.0
    else:
        assert float(row["mean_iou"]) == 1.0
