"""load_samples on every layout it recognises, and a clear error for every kind of bad input."""

import numpy as np
import pytest
import scipy.ndimage
import tifffile
from PIL import Image

from keras_unet.data import Sample, load_samples
from keras_unet.data.readers import instance_labels


def two_cells(height=12, width=16, value=255, dtype="uint8"):
    mask = np.zeros((height, width), dtype)
    mask[2:8, 1:6] = value
    mask[3:10, 8:14] = value
    return mask


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".png", ".jpg", ".bmp"):
        Image.fromarray(array).save(path)
    else:
        tifffile.imwrite(path, array, photometric="minisblack")  # 3D: a stack of grey pages
    return path


def image_folder(root, names=("a", "b"), image_suffix=".png", mask_suffix=".png", mask=None):
    rng = np.random.default_rng(0)
    for name in names:
        write(root / "images" / f"{name}{image_suffix}", rng.integers(0, 255, (12, 16), "uint8"))
        write(root / "masks" / f"{name}{mask_suffix}", two_cells() if mask is None else mask)
    return root


@pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
def test_jpeg_and_bmp_images_train_as_unet_predict_reads_them(tmp_path, suffix):
    samples = load_samples(image_folder(tmp_path, image_suffix=suffix))
    assert [s.path for s in samples] == [str(tmp_path / "images" / f"{n}{suffix}") for n in "ab"]
    assert samples[0].image.shape == (12, 16) and samples[0].labels.max() == 2


def test_images_and_masks_folder_binary_masks_become_cells(tmp_path):
    samples = load_samples(image_folder(tmp_path))
    assert [s.path for s in samples] == [str(tmp_path / "images" / n) for n in ("a.png", "b.png")]
    expected, count = scipy.ndimage.label(two_cells() > 0)
    assert count == 2
    for sample in samples:
        assert isinstance(sample, Sample) and sample.labels.dtype == np.int32
        np.testing.assert_array_equal(sample.labels, expected)
        np.testing.assert_array_equal(sample.image, np.asarray(Image.open(sample.path)))


@pytest.mark.parametrize("value", [1, 255])
def test_binary_tiff_masks_and_instance_ids(tmp_path, value):
    instances = two_cells(value=value, dtype="uint16")
    instances[instances > 0] += np.where(np.arange(16) >= 8, 6, 0)[None, :].repeat(12, 0)[
        instances > 0].astype("uint16")  # right cell gets another id: an instance image
    image_folder(tmp_path / "binary", image_suffix=".tif", mask_suffix=".tif",
                 mask=two_cells(value=value, dtype="uint16"))
    image_folder(tmp_path / "instances", image_suffix=".tif", mask_suffix=".png", mask=instances)
    binary = load_samples(tmp_path / "binary")[0].labels
    kept = load_samples(tmp_path / "instances", labels="instances")[0].labels
    with pytest.raises(ValueError, match=r"a\.png' holds 2 different non-zero values "
                                         r".*\(unet train --labels\)"):
        load_samples(tmp_path / "instances")  # ids or classes: the user must say
    np.testing.assert_array_equal(binary, scipy.ndimage.label(two_cells() > 0)[0])
    np.testing.assert_array_equal(kept, instances.astype(np.int32))
    assert sorted(np.unique(kept)) == [0, value, value + 6]


def test_rgb_image_palette_mask_and_whole_number_float_mask(tmp_path):
    write(tmp_path / "images" / "rgb.png", np.zeros((12, 16, 3), "uint8"))
    palette = Image.fromarray(two_cells(value=3))
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] * 64)
    (tmp_path / "masks").mkdir()
    palette.convert("P").save(tmp_path / "masks" / "rgb.png")
    write(tmp_path / "images" / "f.tif", np.zeros((12, 16), "float32"))
    write(tmp_path / "masks" / "f.tif", two_cells(value=1, dtype="float32") * 4)
    float_mask, rgb = load_samples(tmp_path)
    assert rgb.image.shape == (12, 16, 3)
    np.testing.assert_array_equal(rgb.labels, scipy.ndimage.label(two_cells() > 0)[0])
    np.testing.assert_array_equal(float_mask.labels, scipy.ndimage.label(two_cells() > 0)[0])


def test_isbi_stack_pair_one_sample_per_page(tmp_path):
    rng = np.random.default_rng(1)
    volume = rng.integers(0, 255, (3, 20, 24), "uint8")
    labels = np.full((3, 20, 24), 255, "uint8")
    labels[:, 10, :] = 0  # a membrane splits each page in two cells ...
    labels[1, :, 12] = 0  # ... and page 1 in four
    write(tmp_path / "train-volume.tif", volume)
    write(tmp_path / "train-labels.tif", labels)
    write(tmp_path / "test-volume.tif", volume)  # ISBI's unlabelled test stack is not a sample
    samples = load_samples(tmp_path)
    assert [s.path for s in samples] == [f"{tmp_path / 'train-volume.tif'}[{i}]" for i in range(3)]
    for page, sample in enumerate(samples):
        np.testing.assert_array_equal(sample.image, volume[page])
        np.testing.assert_array_equal(sample.labels, scipy.ndimage.label(labels[page] > 0)[0])
    assert [s.labels.max() for s in samples] == [2, 4, 2]
    by_file = load_samples(tmp_path / "train-labels.tif")
    assert [s.path for s in by_file] == [s.path for s in samples]


def test_cell_tracking_challenge_only_annotated_frames(tmp_path):
    rng = np.random.default_rng(2)
    frames = {}
    for sequence in ("01", "02"):
        for t in range(3):
            frames[sequence, t] = write(tmp_path / sequence / f"t{t:03d}.tif",
                                        rng.integers(0, 4095, (12, 16), "uint16"))
    annotation = two_cells(value=5, dtype="uint16")
    annotation[annotation > 0] += (np.arange(16)[None, :].repeat(12, 0)[annotation > 0] >= 8
                                   ).astype("uint16") * 4  # ids 5 and 9, kept as they are
    write(tmp_path / "01_GT" / "SEG" / "man_seg002.tif", annotation)
    write(tmp_path / "01_GT" / "SEG" / "man_seg000.tif", annotation)
    write(tmp_path / "02_GT" / "SEG" / "man_seg001.tif", annotation)
    write(tmp_path / "01_GT" / "TRA" / "man_track000.tif", annotation)  # tracking: not read
    samples = load_samples(tmp_path)
    assert [s.path for s in samples] == [str(frames[k]) for k in (("01", 0), ("01", 2), ("02", 1))]
    for sample in samples:
        np.testing.assert_array_equal(sample.image, tifffile.imread(sample.path))
        np.testing.assert_array_equal(sample.labels, annotation.astype(np.int32))


def test_cell_tracking_challenge_3d_slice_annotations(tmp_path):
    stack = np.random.default_rng(3).integers(0, 255, (4, 12, 16), "uint8")
    write(tmp_path / "01" / "t0007.tif", stack)
    write(tmp_path / "01_GT" / "SEG" / "man_seg_0007_002.tif", two_cells())
    [sample] = load_samples(tmp_path)
    assert sample.path == f"{tmp_path / '01' / 't0007.tif'}[2]"
    np.testing.assert_array_equal(sample.image, stack[2])
    assert sample.labels.max() == 2


def test_instance_labels_rejects_differing_channels_and_keeps_equal_ones():
    grey = two_cells()
    np.testing.assert_array_equal(instance_labels(np.stack([grey] * 3, -1), "m.png"),
                                  scipy.ndimage.label(grey > 0)[0])
    colours = np.stack([grey, grey // 2, grey], -1)
    with pytest.raises(ValueError, match="'m.png' has 3 differing channels"):
        instance_labels(colours, "m.png")


def corrupt(path):
    path.write_bytes(b"this is not an image at all")


BAD_INPUTS = {
    "missing mask": (lambda r: (image_folder(r), (r / "masks" / "b.png").unlink()),
                     ValueError, r"images without a mask in .*masks.*'b.png'"),
    "missing image": (lambda r: (image_folder(r), (r / "images" / "a.png").unlink()),
                      ValueError, r"masks without an image in .*images.*'a.png'"),
    "empty images": (lambda r: ((r / "images").mkdir(), (r / "masks").mkdir()),
                     ValueError, r"images' has no images"),
    "no masks folder": (lambda r: write(r / "images" / "a.png", two_cells()),
                        ValueError, r"has no masks/ folder"),
    "corrupt png": (lambda r: (image_folder(r), corrupt(r / "masks" / "a.png")),
                    ValueError, r"cannot read '.*masks/a.png'"),
    "corrupt tiff": (lambda r: (image_folder(r, image_suffix=".tif"),
                                corrupt(r / "images" / "b.tif")),
                     ValueError, r"images/b.tif"),
    "size mismatch": (lambda r: image_folder(r, mask=two_cells(10, 16)), ValueError,
                      r"images/a.png' is 12x16 but its mask '.*masks/a.png' is 10x16"),
    "fractional labels": (lambda r: image_folder(r, mask_suffix=".tif",
                                                 mask=two_cells(dtype="float32") / 7),
                          ValueError, r"masks/a.tif' is not integer: dtype float32"),
    "nan image": (lambda r: (image_folder(r, image_suffix=".tif", names=("a",)),
                             write(r / "images" / "a.tif", np.full((12, 16), np.nan, "float32"))),
                  ValueError, r"images/a.tif' holds NaN or infinite values"),
    "negative labels": (lambda r: image_folder(r, mask_suffix=".tif",
                                               mask=-two_cells(value=1, dtype="int16")),
                        ValueError, r"masks/a.tif' has negative values"),
    "other files": (lambda r: (image_folder(r), (r / "images" / "notes.txt").write_text("x")),
                    ValueError, r"images' holds files that are not PNG, TIFF, JPEG or BMP images: "
                    r"'notes.txt'"),
    "a lossy mask": (lambda r: (image_folder(r, names=("a",)), (r / "masks" / "a.png").unlink(),
                                Image.fromarray(two_cells()).save(r / "masks" / "a.jpg")),
                     ValueError, r"masks' holds files that are not PNG or TIFF masks \(lossless\): "
                     r"'a.jpg'"),
    "same stem twice": (lambda r: (image_folder(r), write(r / "images" / "a.tif", two_cells())),
                        ValueError, r"a.png' and .*a.tif' have the same stem"),
    "empty folder": (lambda r: None, ValueError, r"is empty"),
    "unknown layout": (lambda r: write(r / "picture.png", two_cells()), ValueError,
                       r"has no recognised layout; expected a folder with images/ \(PNG, "
                       r"TIFF, JPEG or BMP\) and masks/ \(PNG or TIFF\)"),
    "isbi labels only": (lambda r: write(r / "train-labels.tif", two_cells()[None]), ValueError,
                         r"train-labels.tif' have no train-volume.tif"),
    "isbi volume only": (lambda r: write(r / "train-volume.tif", two_cells()[None]), ValueError,
                         r"'train-volume.tif' in .* have no <name>-labels.tif"),
    "isbi page counts": (lambda r: (write(r / "train-volume.tif", np.stack([two_cells()] * 3)),
                                    write(r / "train-labels.tif", np.stack([two_cells()] * 2))),
                         ValueError, r"train-volume.tif' has 3 pages but .*train-labels.tif'"),
    "ctc frame missing": (lambda r: (write(r / "01" / "t000.tif", two_cells()),
                                     write(r / "01_GT" / "SEG" / "man_seg004.tif", two_cells())),
                          ValueError, r"man_seg004.tif' has no frame t004.tif"),
    "ctc truth without images": (lambda r: write(r / "02_GT" / "SEG" / "man_seg000.tif",
                                                 two_cells()), ValueError,
                                 r"02_GT' has no image sequence '.*/02'"),
    "ctc no annotations": (lambda r: write(r / "01" / "t000.tif", two_cells()), ValueError,
                           r"has no SEG annotations"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_names_the_file_and_the_problem(tmp_path, case):
    make, error, message = BAD_INPUTS[case]
    make(tmp_path)
    with pytest.raises(error, match=message):
        load_samples(tmp_path)


def test_missing_path_and_plain_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="'.*nowhere' does not exist"):
        load_samples(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="picture.png' is a file"):
        load_samples(write(tmp_path / "picture.png", two_cells()))
