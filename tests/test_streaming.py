"""Band-by-band prediction of TIFFs against predict_tiled and against the tile views by hand."""

import keras
import numpy as np
import pytest
import tifffile

from keras_unet import build_unet, geometry, predict_tiled
from keras_unet.class_layout import mask_from_probabilities
from keras_unet.geometry import valid_tile_size
from keras_unet.inference.streaming import predict_tiff
from keras_unet.io.tiff import read_tiff


def _image(shape, dtype=np.uint8, seed=0):
    return np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, shape, dtype=dtype)


@pytest.fixture(scope="module")
def grey_model():
    keras.utils.set_random_seed(0)
    return build_unet((None, None, 1), 2, filters=4, depth=2)


@pytest.mark.parametrize("padding, channels, tile", [("valid", 1, 64), ("same", 3, 48)])
def test_streaming_equals_predict_tiled(tmp_path, padding, channels, tile):
    model = build_unet((None, None, channels), 2, filters=4, depth=2, padding=padding)
    image = _image((300, 500, channels) if channels > 1 else (300, 500), np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", image)
    predict_tiff(model, tmp_path / "in.tif", tmp_path / "mask.tif", tile_size=tile,
                 probabilities_path=tmp_path / "p.tif")
    expected = predict_tiled(model, image, tile_size=tile)
    np.testing.assert_allclose(tifffile.imread(tmp_path / "p.tif"), expected, atol=1e-4)
    decided = np.abs(expected[..., 1] - expected[..., 0]) > 1e-3
    mask = tifffile.imread(tmp_path / "mask.tif")
    np.testing.assert_array_equal(mask[decided], mask_from_probabilities(expected)[decided])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "mask.tif", "p.tif"]


def test_streaming_reads_compressed_and_planar_tiffs(tmp_path):
    model = build_unet((None, None, 3), 2, filters=4, depth=2)
    image = _image((3, 90, 70))
    tifffile.imwrite(tmp_path / "in.tif", image, compression="zlib", photometric="minisblack",
                     metadata={"axes": "CYX"})
    assert read_tiff(tmp_path / "in.tif").shape == (90, 70, 3)
    predict_tiff(model, tmp_path / "in.tif", tmp_path / "mask.tif")
    expected = mask_from_probabilities(predict_tiled(model, np.moveaxis(image, 0, -1)))
    assert (tifffile.imread(tmp_path / "mask.tif") == expected).mean() > 0.999


def test_streaming_tile_tta_averages_the_eight_views_of_each_tile(tmp_path, grey_model):
    """With one tile covering the image, tile TTA is the mean over the 8 flips/rotations of the
    mirror-padded tile, each predicted and turned back."""
    image = _image((60, 90))
    tifffile.imwrite(tmp_path / "in.tif", image)
    tiles = (valid_tile_size(60, 2, "valid"), valid_tile_size(90, 2, "valid"))
    predict_tiff(grey_model, tmp_path / "in.tif", tmp_path / "mask.tif", tta=True,
                 tile_size=tiles, probabilities_path=tmp_path / "p.tif")
    normalized = ((image - image.mean()) / image.std()).astype("float32")
    pad = geometry.border(2)
    padded = np.pad(normalized, ((pad, tiles[0] - 60 - pad), (pad, tiles[1] - 90 - pad)),
                    mode="reflect")
    views = []
    for k in range(8):
        turned = np.rot90(padded[:, ::-1] if k >= 4 else padded, k % 4)
        output = np.rot90(grey_model(turned[None, ..., None].copy())[0].numpy(), -(k % 4))
        views.append((output[:, ::-1] if k >= 4 else output)[:60, :90])
    np.testing.assert_allclose(tifffile.imread(tmp_path / "p.tif"), np.mean(views, 0),
                               atol=1e-5)
    assert not np.allclose(views[0], views[1], atol=1e-3)  # the views really differ


def test_streaming_refuses_to_overwrite(tmp_path, grey_model):
    tifffile.imwrite(tmp_path / "in.tif", _image((30, 40)))
    (tmp_path / "mask.tif").write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="mask.tif.*overwrite=True"):
        predict_tiff(grey_model, tmp_path / "in.tif", tmp_path / "mask.tif")
    assert (tmp_path / "mask.tif").read_bytes() == b"keep me"
    with pytest.raises(FileExistsError, match="is the input"):
        predict_tiff(grey_model, tmp_path / "in.tif", tmp_path / "in.tif", overwrite=True)
    predict_tiff(grey_model, tmp_path / "in.tif", tmp_path / "mask.tif", overwrite=True)
    assert tifffile.imread(tmp_path / "mask.tif").shape == (30, 40)


def test_streaming_rejects_bad_inputs(tmp_path, grey_model):
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        predict_tiff(grey_model, tmp_path / "missing.tif", tmp_path / "mask.tif")
    (tmp_path / "junk.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="not a readable TIFF"):
        predict_tiff(grey_model, tmp_path / "junk.tif", tmp_path / "mask.tif")
    tifffile.imwrite(tmp_path / "rgb.tif", _image((30, 40, 3)))
    with pytest.raises(ValueError, match="rgb.tif"):
        predict_tiff(grey_model, tmp_path / "rgb.tif", tmp_path / "mask.tif")
    tifffile.imwrite(tmp_path / "stack.tif", _image((4, 30, 40)), photometric="minisblack",
                     metadata={"axes": "ZYX"})
    with pytest.raises(ValueError, match="stack.tif.*axes 'ZYX'"):
        predict_tiff(grey_model, tmp_path / "stack.tif", tmp_path / "mask.tif")
    assert not (tmp_path / "mask.tif").exists()
    assert not list(tmp_path.glob("*.partial"))


def test_streaming_failure_midway_leaves_no_partial_or_output_files(tmp_path, grey_model,
                                                                    monkeypatch):
    from keras_unet.class_layout import ClassLayout

    tifffile.imwrite(tmp_path / "in.tif", _image((90, 40)))
    (tmp_path / "p.tif").write_bytes(b"earlier probabilities")
    bands = []

    def fail_on_second_band(layout, block):
        bands.append(len(block))
        if len(bands) == 2:
            raise RuntimeError("disk full")
        return mask_from_probabilities(block)

    monkeypatch.setattr(ClassLayout, "mask", fail_on_second_band)
    with pytest.raises(RuntimeError, match="disk full"):
        predict_tiff(grey_model, tmp_path / "in.tif", tmp_path / "mask.tif", tile_size=44,
                     probabilities_path=tmp_path / "p.tif", overwrite=True)
    assert len(bands) == 2  # the partial files existed and held a first band
    assert not (tmp_path / "mask.tif").exists()
    assert (tmp_path / "p.tif").read_bytes() == b"earlier probabilities"
    assert not list(tmp_path.glob("*.partial"))
