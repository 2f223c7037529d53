"""Overlap-tile prediction against the whole mirror-padded image in one pass, and TTA."""

import keras
import numpy as np
import pytest

from keras_unet import build_unet, geometry, predict_tiled
from keras_unet.class_layout import mask_from_probabilities
from keras_unet.inference.network import compiled_forward, model_geometry, tile_predictor
from keras_unet.inference.plan import plan_tiles


def _image(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    return (rng.normal(size=shape) * 50 + 10).astype(dtype)


def _one_pass(model, image, depth):
    """The model applied once to the whole normalised, mirror-padded image (NumPy reference)."""
    image = np.asarray(image, np.float64)
    image = image[..., None] if image.ndim == 2 else image
    normalized = ((image - image.mean()) / image.std()).astype("float32")
    height, width = image.shape[:2]
    pad = geometry.border(depth)
    big_h = geometry.valid_input_size(height, depth)
    big_w = geometry.valid_input_size(width, depth)
    padded = np.pad(normalized, ((pad, big_h - height - pad), (pad, big_w - width - pad), (0, 0)),
                    mode="reflect")
    return model(padded[None])[0].numpy()[:height, :width]


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(0)
    return {(depth, channels): build_unet((None, None, channels), 2, filters=4, depth=depth)
            for depth, channels in ((2, 1), (2, 3), (3, 1))}


@pytest.mark.parametrize("shape, dtype, channels, depth, tile", [
    ((37, 53), np.uint8, 1, 2, None),
    ((37, 53), np.uint8, 1, 2, 48),
    ((100, 130), np.uint16, 1, 2, 64),
    ((100, 130), np.uint16, 1, 2, (52, 76)),
    ((101, 67), np.float32, 1, 2, 44),
    ((100, 130, 3), np.uint8, 3, 2, 60),
    ((61, 45, 3), np.uint16, 3, 2, None),
    ((100, 130), np.uint8, 1, 3, 108),
    ((37, 53), np.float64, 1, 3, None),
    ((37, 53), np.uint16, 1, 2, 200),  # one tile far larger than the image
    ((1, 7), np.uint8, 1, 2, None),
    ((2, 3, 3), np.float32, 3, 2, 44),
])
def test_seamless_equals_one_pass(models, shape, dtype, channels, depth, tile):
    model = models[(depth, channels)]
    image = _image(shape, dtype)
    tiled = predict_tiled(model, image, tile_size=tile, batch_size=3)
    assert tiled.shape == (*shape[:2], 2) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, _one_pass(model, image, depth), atol=1e-4, rtol=0)


def test_many_tiles_really_are_used(models):
    rows, cols, _ = plan_tiles((100, 130), model_geometry(models[(2, 1)]), 48)
    assert rows.count * cols.count > 6


def test_batch_size_does_not_change_the_result(models):
    image = _image((70, 90), np.uint8)
    one = predict_tiled(models[(2, 1)], image, tile_size=48, batch_size=1)
    many = predict_tiled(models[(2, 1)], image, tile_size=48, batch_size=8)
    np.testing.assert_allclose(one, many, atol=1e-5)


def test_fixed_input_size_model_tiles_with_its_size(models):
    free = models[(2, 1)]
    fixed = build_unet((64, 80, 1), 2, filters=4, depth=2)
    fixed.set_weights(free.get_weights())
    assert model_geometry(fixed).input_size == (64, 80)
    image = _image((100, 130), np.uint16)
    np.testing.assert_allclose(predict_tiled(fixed, image), _one_pass(free, image, 2), atol=1e-4)
    with pytest.raises(ValueError, match="fixed input"):
        predict_tiled(fixed, image, tile_size=48)


def test_no_retracing_across_tiles_batches_and_images(models):
    model = models[(2, 1)]
    for shape in ((37, 53), (100, 130), (64, 64)):
        predict_tiled(model, _image(shape, np.uint8), tile_size=48, batch_size=3)
    predict_tiled(model, _image((40, 30), np.uint8), tta=True)
    forward = compiled_forward(model, model_geometry(model))
    assert forward.experimental_get_tracing_count() == 1


def test_a_tile_predictor_keeps_its_model_alive():
    """A model built inline has no other owner: a garbage collection must not take it away."""
    import gc

    _, predict_tiles = tile_predictor(build_unet((None, None, 1), 2, filters=4, depth=2))
    gc.collect()
    assert predict_tiles(np.zeros((3, 44, 60, 1), "float32")).shape == (3, 4, 20, 2)


@pytest.mark.parametrize("turn", range(1, 8))
def test_tta_is_equivariant_to_rotations_and_flips(models, turn):
    model = models[(2, 1)]
    image = _image((37, 53), np.uint8)
    moved = np.rot90(image[:, ::-1] if turn >= 4 else image, turn % 4)
    expected = predict_tiled(model, image, tta=True)
    expected = np.rot90(expected[:, ::-1] if turn >= 4 else expected, turn % 4)
    np.testing.assert_allclose(predict_tiled(model, moved, tta=True), expected, atol=1e-5)


def test_tta_averages_the_eight_predictions(models):
    model = models[(2, 1)]
    image = _image((40, 52), np.uint8)
    views = []
    for k in range(8):
        turned = np.rot90(image[:, ::-1] if k >= 4 else image, k % 4)
        back = np.rot90(predict_tiled(model, turned), -(k % 4))
        views.append(back[:, ::-1] if k >= 4 else back)
    np.testing.assert_allclose(predict_tiled(model, image, tta=True), np.mean(views, 0),
                               atol=1e-5)


def test_same_padding_single_tile_equals_one_pass():
    model = build_unet((None, None, 1), 2, filters=4, depth=2, padding="same")
    image = _image((37, 53), np.uint8)
    tiled = predict_tiled(model, image)
    normalized = (image - image.mean()) / image.std()
    padded = np.pad(normalized, ((0, 40 - 37), (0, 56 - 53)), mode="reflect")
    expected = model(padded[None, ..., None].astype("float32"))[0].numpy()[:37, :53]
    np.testing.assert_allclose(tiled, expected, atol=1e-4)


def test_same_padding_blending_is_exact_without_border_effects():
    """A same-padding net without spatial context (pool, upsample, 1x1 conv) needs no blending
    to be exact, so overlapping linear-ramp blending must give back the one-pass result."""
    inputs = keras.Input((None, None, 1))
    x = keras.layers.MaxPooling2D(2)(inputs)
    x = keras.layers.UpSampling2D(2)(x)
    x = keras.layers.Conv2D(3, 1, activation="softmax")(x)
    model = keras.Model(inputs, x)
    assert model_geometry(model).padding == "same"
    image = _image((100, 130), np.uint16)
    rows, cols, _ = plan_tiles(image.shape, model_geometry(model), 32)
    assert rows.count > 3 and rows.step < rows.tile  # overlapping tiles
    normalized = ((image - image.mean()) / image.std()).astype("float32")
    expected = model(normalized[None, ..., None])[0].numpy()
    np.testing.assert_allclose(predict_tiled(model, image, tile_size=32), expected, atol=1e-5)


def test_same_padding_many_tiles_give_probabilities():
    model = build_unet((None, None, 1), 3, filters=4, depth=2, padding="same")
    result = predict_tiled(model, _image((70, 90), np.uint8), tile_size=32)
    assert result.shape == (70, 90, 3)
    np.testing.assert_allclose(result.sum(-1), 1, atol=1e-5)


def test_model_geometry_reads_the_network():
    geom = model_geometry(build_unet((None, None, 2), 3, filters=6, depth=3, padding="same"))
    assert (geom.depth, geom.padding, geom.channels, geom.num_classes, geom.filters) == (
        3, "same", 2, 3, 6)
    assert geom.border == 0
    assert model_geometry(build_unet((None, None, 1), 2, filters=4, depth=2)).border == 20


def test_model_geometry_rejects_models_that_are_not_unets():
    inputs = keras.Input((None, None, 1))
    plain = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    with pytest.raises(ValueError, match="no MaxPooling2D"):
        model_geometry(plain)
    x = keras.layers.MaxPooling2D(2)(inputs)
    shrinking = keras.Model(inputs, keras.layers.Conv2D(2, 3)(x))
    with pytest.raises(ValueError, match="not a U-Net"):
        model_geometry(shrinking)


@pytest.mark.parametrize("image, match", [
    (np.zeros((20, 30, 3), "uint8"), r"\(20, 30, 3\).*\(height, width, 1\)"),
    (np.zeros((2, 20, 30, 1), "uint8"), "shape"),
    (np.full((20, 30), np.nan, "float32"), "NaN"),
    (np.zeros((0, 30), "uint8"), "shape"),
    (np.array([["a"]]), "dtype"),
])
def test_bad_images_are_rejected(models, image, match):
    with pytest.raises(ValueError, match=match):
        predict_tiled(models[(2, 1)], image)


@pytest.mark.parametrize("kwargs, match", [
    ({"tile_size": 45}, "tile_size 45"),
    ({"tile_size": 40}, "tile_size 40"),
    ({"tile_size": (48,)}, "pair"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_tiling_arguments_are_rejected(models, kwargs, match):
    with pytest.raises(ValueError, match=match):
        predict_tiled(models[(2, 1)], np.zeros((20, 30), "uint8"), **kwargs)


def test_masks_of_sigmoid_two_and_three_classes():
    sigmoid = np.array([[[0.2], [0.7], [0.4], [0.9]]], "float32")
    np.testing.assert_array_equal(mask_from_probabilities(sigmoid), [[0, 255, 0, 255]])
    two = np.array([[[0.6, 0.4], [0.3, 0.7]]], "float32")
    np.testing.assert_array_equal(mask_from_probabilities(two), [[0, 255]])
    rng = np.random.default_rng(4)
    three = rng.dirichlet([1, 1, 1], size=(6, 7)).astype("float32")
    mask = mask_from_probabilities(three)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 127, 254}
    np.testing.assert_array_equal(mask // (255 // 2), np.argmax(three, -1))  # the class index

