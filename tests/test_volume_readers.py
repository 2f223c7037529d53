"""Reading volumes: images/ + masks/ of TIFF stacks and zarr stores, Cell Tracking Challenge 3D
folders (3D and slice annotations), the voxel size the files record or the one given."""

import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr.writer import write_image

from keras_unet.class_layout import UNLABELLED
from keras_unet.data import load_samples, save_samples, synthetic_volumes
from keras_unet.errors import FaultError
from keras_unet.io.images import write_stack


@pytest.fixture(scope="module")
def nuclei():
    return synthetic_volumes(2, size=24, depth=10, seed=2)


def _folders(root):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    return root / "images", root / "masks"


def test_tiff_stacks_with_imagej_and_ome_voxel_sizes(tmp_path, nuclei):
    images, masks = _folders(tmp_path)
    write_stack(images / "a.tif", nuclei[0].image, (2.0, 0.5, 0.5))  # ImageJ hyperstack
    tifffile.imwrite(masks / "a.tif", (nuclei[0].labels > 0).astype(np.uint8) * 255,
                     photometric="minisblack")  # binary: split by 6-connected components
    tifffile.imwrite(images / "b.ome.tif", nuclei[1].image,
                     metadata={"axes": "ZYX", "PhysicalSizeZ": 1.5, "PhysicalSizeY": 0.3,
                               "PhysicalSizeX": 0.3})
    tifffile.imwrite(masks / "b.ome.tif", nuclei[1].labels.astype(np.uint16),
                     metadata={"axes": "ZYX"})
    a, b = load_samples(tmp_path, "instances")
    assert a.image.shape == a.labels.shape == (10, 24, 24) and a.spacing == (2.0, 0.5, 0.5)
    assert a.labels.max() == nuclei[0].labels.max()  # nuclei never touch: components are them
    assert b.spacing == pytest.approx((1.5, 0.3, 0.3))
    np.testing.assert_array_equal(b.labels, nuclei[1].labels)
    [given, _] = load_samples(tmp_path, "instances", spacing=(3, 1, 1))
    assert given.spacing == (3.0, 1.0, 1.0)


def test_saved_volumes_read_back_alike(tmp_path, nuclei):
    partial = nuclei[0].labels.copy()
    partial[3:] = UNLABELLED
    from keras_unet.data import Sample

    save_samples([Sample(nuclei[0].image, partial, "v.tif", (2.0, 1.0, 1.0))], tmp_path,
                 ignore_label=65535)
    [back] = load_samples(tmp_path, "instances", ignore_label=65535)
    np.testing.assert_array_equal(back.labels, partial)
    np.testing.assert_array_equal(back.image, nuclei[0].image)
    assert back.spacing == (2.0, 1.0, 1.0)


def test_a_volume_whose_write_fails_leaves_no_half_file(tmp_path, nuclei, monkeypatch):
    import keras_unet.data.writers as writers

    def half_written(path, volume, spacing=None):
        path.write_bytes(b"II*\0")  # the start of a TIFF, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writers, "write_stack", half_written)
    with pytest.raises(FaultError, match=r"images/.*\.tif' could not be written: No space"):
        save_samples(nuclei[:1], tmp_path)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []


def test_zarr_and_ome_zarr_volumes(tmp_path, nuclei):
    images, masks = _folders(tmp_path)
    group = zarr.open_group(images / "a.ome.zarr", mode="w")
    write_image(nuclei[0].image[None], group, axes="czyx", scale_factors=())
    attributes = dict(group.attrs)
    transforms = attributes["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    transforms[0]["scale"] = [1.0, 2.0, 0.4, 0.4]  # the voxel size, as a microscope writes it
    group.attrs.update(attributes)
    labels = zarr.create_array(masks / "a.zarr", shape=(10, 24, 24), dtype="uint16")
    labels[:] = nuclei[0].labels
    [sample] = load_samples(tmp_path, "instances")
    assert sample.image.shape == (10, 24, 24, 1) and sample.spacing == (2.0, 0.4, 0.4)
    np.testing.assert_array_equal(sample.labels, nuclei[0].labels)


def test_cell_tracking_challenge_3d(tmp_path, nuclei):
    (tmp_path / "01").mkdir()
    seg = tmp_path / "01_GT" / "SEG"
    seg.mkdir(parents=True)
    for t, volume in enumerate(nuclei):
        write_stack(tmp_path / "01" / f"t00{t}.tif", volume.image, (2.0, 0.5, 0.5))
    write_stack(seg / "man_seg000.tif", nuclei[0].labels.astype(np.uint16))  # a 3D annotation
    for z in (2, 7):  # slice annotations of frame 1
        tifffile.imwrite(seg / f"man_seg_001_{z:03d}.tif",
                         nuclei[1].labels[z].astype(np.uint16))
    two_d = load_samples(tmp_path)
    assert [s.labels.ndim for s in two_d] == [3, 2, 2]  # slices stay 2D samples by default
    full, partial = load_samples(tmp_path, ndim=3)
    assert full.spacing == (2.0, 0.5, 0.5) and full.labels.shape == (10, 24, 24)
    np.testing.assert_array_equal(full.labels, nuclei[0].labels)
    assert partial.labels.shape == (10, 24, 24)
    assert (partial.labels[[0, 1, 3, 4, 5, 6, 8, 9]] == UNLABELLED).all()
    assert (partial.labels[2] >= 0).all() and (partial.labels[7] >= 0).all()
    ids_2, ids_7 = (set(np.unique(partial.labels[z])) - {0} for z in (2, 7))
    assert ids_2 and ids_7 and not ids_2 & ids_7  # distinct ids per annotated plane


def test_a_volume_with_a_2d_mask_is_named(tmp_path, nuclei):
    images, masks = _folders(tmp_path)
    write_stack(images / "a.tif", nuclei[0].image)
    tifffile.imwrite(masks / "a.tif", nuclei[0].labels[0].astype(np.uint16))
    with pytest.raises(ValueError, match="a.tif' is a volume but its mask .* is a 2D image"):
        load_samples(tmp_path, "instances")
