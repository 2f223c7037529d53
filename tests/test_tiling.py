"""The one tiling engine: tiled == one whole pass, served == local, windows == the whole image.

Random (seeded) image sizes, channel counts and tile sizes, including images smaller than one
tile and one pixel wide; tiny depth-2 networks, and networks that are not Keras models.
"""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_unet import build_unet, geometry, predict_tiled
from keras_unet.inference.engine import predict_window
from keras_unet.inference.mirror import mirror
from keras_unet.inference.network import ModelGeometry, compiled_forward, model_geometry
from keras_unet.inference.plan import concrete_plan, plan_axis, tilings
from keras_unet.normalization import normalize_image
from keras_unet.serving.graph import predict_images, serving_tiling

DEPTH = 2
RNG = np.random.default_rng(14)
SMALLEST = geometry.valid_tile_size(1, DEPTH)


def _random_cases(count, largest_image=90):
    """(height, width, channels, tile) with one-pixel-wide images and tiles larger than them."""
    cases = [(1, 1, 1, None), (1, 57, 2, 48), (63, 1, 3, SMALLEST), (5, 3, 1, 120)]
    while len(cases) < count:
        tile = SMALLEST + 2**DEPTH * int(RNG.integers(2, 20)) if RNG.random() < 0.8 else None
        cases.append((int(RNG.integers(1, largest_image)), int(RNG.integers(1, largest_image)),
                      int(RNG.integers(1, 4)), tile))
    return cases


CASES = _random_cases(22)


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(1)
    return {channels: build_unet((None, None, channels), 3, filters=4, depth=DEPTH)
            for channels in (1, 2, 3)}


def _image(height, width, channels, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4096, (height, width, channels)).astype(np.uint16)


def _one_pass(model, image):
    """The model once on the whole normalised image, mirror-padded by NumPy to a valid size."""
    normalized = normalize_image(image).numpy()
    height, width = image.shape[:2]
    pad = geometry.border(DEPTH)
    big_h, big_w = (geometry.valid_input_size(size, DEPTH) for size in (height, width))
    padded = np.pad(normalized, ((pad, big_h - height - pad), (pad, big_w - width - pad), (0, 0)),
                    mode="reflect") if min(height, width) > 1 else _pad_thin(normalized, pad,
                                                                             big_h, big_w)
    forward = compiled_forward(model, model_geometry(model))  # the model, traced once
    return forward(padded[None])[0].numpy()[:height, :width]


def _pad_thin(normalized, pad, big_h, big_w):
    """np.pad cannot reflect an axis of one pixel; mirroring it repeats the pixel."""
    rows = np.pad(np.arange(normalized.shape[0]), (pad, big_h - normalized.shape[0] - pad),
                  mode="reflect" if normalized.shape[0] > 1 else "edge")
    cols = np.pad(np.arange(normalized.shape[1]), (pad, big_w - normalized.shape[1] - pad),
                  mode="reflect" if normalized.shape[1] > 1 else "edge")
    return normalized[rows][:, cols]


def test_mirror_is_numpy_reflect_for_any_distance():
    for size in range(2, 9):
        index = np.arange(-40, 50)
        expected = np.pad(np.arange(size), 60, mode="reflect")[index + 60]
        np.testing.assert_array_equal(mirror(index, size).numpy(), expected)
    np.testing.assert_array_equal(mirror(np.arange(-5, 5), 1).numpy(), np.zeros(10))


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_plans_cover_the_axis_on_the_pooling_grid(padding):
    geom = ModelGeometry(DEPTH, padding, 1, 2, (None, None), 4)
    for tile in (None, 48, 64):
        tiling = tilings(geom, tile, max_tile=80)[0]
        for length in range(1, 200, 7):
            plan = concrete_plan(plan_axis(length, tiling))
            assert plan.step % 2**DEPTH == 0  # tiles start on the pooling grid
            assert plan.accumulated - plan.origin >= length  # every pixel gets an output
            # none wasted: without its last tile the axis (and the far blend margin) is not covered
            assert (plan.count - 2) * plan.step + plan.keep - plan.origin < length + plan.origin
            assert geometry.output_size(plan.tile, DEPTH, padding) >= plan.keep


@pytest.mark.parametrize("height, width, channels, tile", CASES)
def test_tiled_equals_one_whole_pass(models, height, width, channels, tile):
    model = models[channels]
    image = _image(height, width, channels, seed=height * 1000 + width)
    tiled = predict_tiled(model, image, tile_size=tile, batch_size=3)
    assert tiled.shape == (height, width, 3) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, _one_pass(model, image), atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def served(models):
    """One served graph per padding (2 channels), traced once for every image size."""
    keras.utils.set_random_seed(2)
    result = {}
    for padding, tile in (("valid", 64), ("same", 32)):
        model = (models[2] if padding == "valid" else
                 build_unet((None, None, 2), 3, filters=4, depth=DEPTH, padding="same"))
        tiling = serving_tiling(model, tile)
        spec = tf.TensorSpec([None, None, None, 2], tf.float32)
        result[padding] = model, tile, tf.function(
            lambda images, model=model, tiling=tiling: predict_images(model, images, tiling),
            input_signature=[spec])
    return result


def test_served_equals_local_on_random_sizes(served):
    valid_model, _, serve_valid = served["valid"]
    for height, width, _, _ in CASES:  # valid padding: the result does not depend on the tile
        image = _image(height, width, 2, seed=height + width)
        local = predict_tiled(valid_model, image)
        remote = serve_valid(image[None].astype(np.float32))[0].numpy()
        np.testing.assert_allclose(remote, local, atol=1e-4, err_msg=f"{height}x{width}")
    same_model, tile, serve_same = served["same"]
    for height, width, _, _ in CASES[:5]:  # same padding blends: the local tile must match
        image = _image(height, width, 2, seed=height + width)
        local = predict_tiled(same_model, image, tile_size=tile)
        remote = serve_same(image[None].astype(np.float32))[0].numpy()
        np.testing.assert_allclose(remote, local, atol=1e-4, err_msg=f"{height}x{width}")
    assert serve_valid.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("seed", range(8))
def test_a_window_is_the_same_window_of_the_whole_image(models, seed):
    rng = np.random.default_rng(100 + seed)
    height, width = (int(n) for n in rng.integers(1, 80, 2))
    channels = int(rng.integers(1, 4))
    top, left = int(rng.integers(0, height)), int(rng.integers(0, width))
    size = (int(rng.integers(1, height - top + 1)), int(rng.integers(1, width - left + 1)))
    tile = [None, SMALLEST, 64][seed % 3]
    image = _image(height, width, channels, seed)
    normalized = normalize_image(image).numpy()
    asked = []

    def read(rows, cols):
        asked.append((rows.min(), rows.max(), cols.min(), cols.max()))
        return normalized[rows][:, cols]

    window = predict_window(models[channels], read, (height, width), (top, left, *size),
                            tile_size=tile)
    whole = predict_tiled(models[channels], image)
    np.testing.assert_allclose(window, whole[top:top + size[0], left:left + size[1]], atol=1e-4)
    lowest, highest = np.min(asked, 0), np.max(asked, 0)
    assert lowest[0] >= 0 and lowest[2] >= 0 and highest[1] < height and highest[3] < width


@pytest.mark.parametrize("image_shape, window, match", [
    ((10, 10), (0, 0, 11, 5), "not a non-empty part"),
    ((10, 10), (-1, 0, 5, 5), "not a non-empty part"),
    ((10, 10), (0, 0, 0, 5), "not a non-empty part"),
    ((10, 10), (0, 0, 5), "window must be"),
    ((0, 10), (0, 0, 1, 1), "image_shape must be"),
])
def test_bad_windows_are_refused(models, image_shape, window, match):
    with pytest.raises(ValueError, match=match):
        predict_window(models[1], lambda r, c: np.zeros((len(r), len(c), 1)), image_shape,
                       window)


class KerasBackedNetwork:
    """A network that is not a keras.Model: the interface an ONNX Runtime wrapper has."""

    def __init__(self, model):
        self.geometry = ModelGeometry(DEPTH, "valid", model.input_shape[-1], 3, (None, None), 4)
        self._model = model
        self.calls = 0

    def predict_tiles(self, tiles: np.ndarray) -> np.ndarray:
        assert tiles.dtype == np.float32 and tiles.ndim == 4
        self.calls += 1
        return np.asarray(self._model.predict_on_batch(tiles), np.float32)


class PixelwiseNetwork:
    """Plain NumPy: a softmax of (x, -x) over the centre of each tile, no context at all."""

    geometry = ModelGeometry(DEPTH, "valid", 1, 2, (None, None), 1, ("dark", "bright"))

    def predict_tiles(self, tiles: np.ndarray) -> np.ndarray:
        border = self.geometry.border
        centre = tiles[:, border:-border, border:-border, :1]
        out = geometry.output_size(tiles.shape[1], DEPTH)
        assert centre.shape[1] == out  # the engine only sends tiles the geometry accepts
        return np.concatenate([1 / (1 + np.exp(2 * centre)), 1 / (1 + np.exp(-2 * centre))], -1)


def test_networks_other_than_keras_models_are_tiled_alike(models):
    network = KerasBackedNetwork(models[2])
    image = _image(70, 45, 2, seed=7)
    np.testing.assert_allclose(predict_tiled(network, image, tile_size=48),
                               predict_tiled(models[2], image), atol=1e-4)
    assert network.calls > 1
    grey = _image(33, 90, 1, seed=8)
    expected = 1 / (1 + np.exp(-2 * normalize_image(grey).numpy()))
    np.testing.assert_allclose(predict_tiled(PixelwiseNetwork(), grey, tile_size=52)[..., 1:],
                               expected, atol=1e-6)
    with pytest.raises(ValueError, match="geometry: ModelGeometry"):
        predict_tiled(object(), grey)


@pytest.mark.parametrize("depth, padding", [(2, "valid"), (3, "valid"), (3, "same")])
def test_every_tile_size_a_refusal_suggests_is_accepted(depth, padding):
    """A user who types the size the message names gets past the check (tile_size 7 of a
    depth-3 network once suggested 92, which gives no step of output and was refused too)."""
    from keras_unet.inference.plan import requested_tiles
    geom = ModelGeometry(depth, padding, 1, 2, (None, None), 4)
    refused = 0
    for tile in range(1, 260):
        try:
            requested_tiles(tile, geom)
        except ValueError as error:
            refused += 1
            suggested = [int(n) for n in re.findall(r"(?:sizes: |use at least |e\.g\. |or )(\d+)",
                                                    str(error))]
            assert suggested, str(error)
            for size in suggested:
                assert requested_tiles(size, geom) == (size, size), (tile, str(error))
    assert refused > 100
