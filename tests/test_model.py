import pathlib

import keras
import numpy as np
import pytest

from keras_unet import build_unet, predict_tiled
from keras_unet.class_layout import default_class_names
from keras_unet.inference.network import ModelGeometry, model_geometry
from keras_unet.layers import CropToMatch, LinearUpsampling
from keras_unet.losses import WeightedCrossentropy
from keras_unet.model import UNet

CONV_TYPES = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)


def _layers(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def test_paper_network():
    model = build_unet((572, 572, 1), 2)
    assert model.output_shape == (None, 388, 388, 2)
    convs = _layers(model, CONV_TYPES)
    assert len(convs) == 23
    assert len(_layers(model, keras.layers.Conv2DTranspose)) == 4
    assert sorted({c.kernel_size for c in convs}) == [(1, 1), (2, 2), (3, 3)]
    assert all(c.padding == "valid" for c in convs if c.kernel_size == (3, 3))
    widths = [c.filters for c in convs if c.kernel_size == (3, 3)]
    assert widths == [64, 64, 128, 128, 256, 256, 512, 512, 1024, 1024,
                      512, 512, 256, 256, 128, 128, 64, 64]
    assert all(isinstance(c.kernel_initializer, keras.initializers.HeNormal) for c in convs)
    assert len(_layers(model, keras.layers.MaxPooling2D)) == 4
    assert len(_layers(model, CropToMatch)) == 4
    # The paper network has about 31 million parameters.
    assert 31_000_000 < model.count_params() < 31_100_000


def test_dropout_at_end_of_contracting_path():
    model = build_unet((None, None, 1), 2, filters=4, depth=3)
    dropouts = _layers(model, keras.layers.Dropout)
    assert [d.name for d in dropouts] == ["enc3_dropout", "bottleneck_dropout"]
    assert all(d.rate == 0.5 for d in dropouts)
    assert not _layers(build_unet((None, None, 1), 2, filters=4, depth=3, dropout=0.0),
                       keras.layers.Dropout)


def test_skip_connections_are_centre_cropped():
    """The cropped skip equals the centre of the encoder feature map."""
    model = build_unet((92, 92, 1), 2, filters=4, depth=2)
    encoder = model.get_layer("enc1_relu2").output
    cropped = model.get_layer("dec1_crop").output
    probe = keras.Model(model.input, [encoder, cropped])
    full, crop = probe(np.random.default_rng(0).random((1, 92, 92, 1), "float32"))
    offset = (full.shape[1] - crop.shape[1]) // 2
    np.testing.assert_array_equal(
        np.asarray(full)[:, offset:offset + crop.shape[1], offset:offset + crop.shape[2]],
        np.asarray(crop),
    )


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_same_padding_output_matches_input(upsampling):
    model = build_unet((None, None, 3), 4, filters=4, depth=2, padding="same",
                       upsampling=upsampling, batch_norm=True)
    assert model(np.zeros((2, 48, 64, 3), "float32")).shape == (2, 48, 64, 4)
    assert len(_layers(model, CONV_TYPES)) == 2 * 2 + 2 + 2 * 3 + 1  # depth 2: 13 convs


def test_a_bilinear_network_of_free_size_trains_and_predicts_at_every_size():
    """Keras's UpSampling2D(interpolation="bilinear") fails in a graph of unknown height and
    width (predict_tiled's compiled forward pass, fit's second tile size); the network's own
    up-sampling gives what it gives where it works."""
    model = build_unet((None, None, 1), 2, filters=4, depth=2, upsampling="bilinear")
    assert predict_tiled(model, np.zeros((37, 53), "uint8")).shape == (37, 53, 2)
    model.compile("adam", WeightedCrossentropy())
    for size in (44, 48):
        images = np.random.default_rng(size).random((2, size, size, 1)).astype("float32")
        out = model.compute_output_shape(images.shape)[1]
        model.fit(images, np.ones((2, out, out), "int32"), verbose=0)
    x = np.random.default_rng(0).random((1, 6, 7, 3)).astype("float32")
    np.testing.assert_allclose(
        LinearUpsampling((2, 2))(x), keras.layers.UpSampling2D(2, interpolation="bilinear")(x),
        atol=1e-6)


def test_dynamic_spatial_dims_follow_geometry():
    model = build_unet((None, None, 1), 2, filters=4, depth=2)
    assert model(np.zeros((1, 92, 124, 1), "float32")).shape == (1, 52, 84, 2)


def test_softmax_outputs_are_probabilities():
    model = build_unet((None, None, 1), 3, filters=4, depth=2)
    probabilities = np.asarray(model(np.random.default_rng(1).random((1, 60, 60, 1))))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_outputs_are_float32_under_mixed_precision(policy):
    keras.mixed_precision.set_global_policy(policy)
    model = build_unet((None, None, 1), 2, filters=4, depth=2)
    assert model.get_layer("enc1_conv1").compute_dtype != "float32"
    assert model.get_layer("final_conv").compute_dtype == "float32"
    assert model(np.zeros((1, 44, 44, 1), "float32")).dtype == "float32"


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (((572, 572), 2), {}, r"input_shape must be \(height, width, channels\), got \(572, 572\)"),
        (((572, 572, 0), 2), {}, "channels must be a positive integer, got 0"),
        (((388, 388, 1), 2), {}, "input_shape height: input size 388 does not fit"),
        (((572, 100, 1), 2), {}, "input_shape width: input size 100"),
        (((None, None, 1), 1), {}, "num_classes must be an integer >= 2 .*use num_classes=2"),
        (((None, None, 1), 0), {}, "num_classes must be an integer >= 2"),
        (((None, None, 1), 2), {"padding": "full"}, "padding must be one of .*'full'"),
        (((None, None, 1), 2), {"upsampling": "nearest"}, "upsampling must be one of"),
        (((None, None, 1), 2), {"final_activation": "relu"}, "final_activation must be"),
        (((None, None, 1), 2), {"final_activation": "sigmoid"}, "exclusive classes"),
        (((None, None, 1), 2), {"dropout": 1.5}, r"dropout must be a number in \[0, 1\)"),
        (((100, 100, 1), 2), {"padding": "same"}, "not divisible by 2\\*\\*depth = 16"),
    ],
)
def test_bad_arguments_raise_at_build_time(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_unet(*args, **kwargs)


def test_logits_output_trains_with_from_logits_losses():
    model = build_unet((None, None, 1), 2, filters=4, depth=2, final_activation=None)
    logits = np.asarray(model(np.random.default_rng(2).random((1, 44, 44, 1), "float32")))
    assert not np.allclose(logits.sum(-1), 1.0)
    labels = np.zeros((1, 44, 44), "int32")
    loss = WeightedCrossentropy(from_logits=True)(labels, logits)
    probabilities = keras.ops.softmax(logits)
    np.testing.assert_allclose(float(loss), float(WeightedCrossentropy()(labels, probabilities)),
                               rtol=1e-5)


# The model records its construction arguments -----------------------------------------------

LEGACY = pathlib.Path(__file__).parent / "data" / "legacy_unet.keras"


def test_saved_model_rebuilds_from_its_recorded_arguments(tmp_path):
    model = build_unet((None, None, 2), 3, filters=4, depth=2, padding="same", batch_norm=True,
                       dropout=0.0, upsampling="bilinear", class_names=("bg", "nucleus", "rim"))
    model.compile(optimizer="adam", loss=WeightedCrossentropy())
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded, UNet)
    assert loaded.get_config() == model.get_config()
    assert loaded.class_names == ("bg", "nucleus", "rim")
    assert model_geometry(loaded) == ModelGeometry(2, "same", 2, 3, (None, None), 4,
                                                   ("bg", "nucleus", "rim"))
    image = np.random.default_rng(0).random((1, 32, 48, 2), "float32")
    np.testing.assert_allclose(loaded(image), model(image), atol=1e-6)


def test_class_names_default_to_the_class_layout_and_are_checked():
    assert build_unet((None, None, 1), 2, filters=2, depth=1).class_names == default_class_names(2)
    assert build_unet((None, None, 1), 3, filters=2, depth=1).class_names == default_class_names(3)
    assert build_unet((None, None, 1), 5, filters=2, depth=1).class_names == default_class_names(5)
    with pytest.raises(ValueError, match="gives 2 names .* 3 classes"):
        build_unet((None, None, 1), 3, filters=2, depth=1, class_names=["a", "b"])


def test_geometry_of_a_model_saved_before_arguments_were_recorded():
    legacy = keras.models.load_model(LEGACY, safe_mode=True)
    assert not isinstance(legacy, UNet)
    assert model_geometry(legacy) == ModelGeometry(2, "valid", 1, 2, (None, None), 2)
    image = np.random.default_rng(1).integers(0, 255, (37, 53), dtype="uint8")
    probabilities = predict_tiled(legacy, image, tile_size=48)
    assert probabilities.shape == (37, 53, 2)
    np.testing.assert_allclose(probabilities, predict_tiled(legacy, image), atol=1e-4)


def test_numpy_integers_are_the_ints_they_hold_and_other_types_are_named(tmp_path):
    """``num_classes = masks.max() + 1`` is a NumPy integer: the model, the metrics, the dataset
    and the tiling take it (and the saved config holds plain ints); a float tile or a missing
    dropout is refused by name."""
    from keras_unet.data import make_dataset, synthetic_cells
    from keras_unet.metrics import IoU

    model = build_unet((np.int64(92), np.int64(92), 1), np.int64(3), filters=np.int32(4),
                       depth=np.int64(2), dropout=np.float32(0.25))
    config = model.get_config()
    assert (type(config["num_classes"]), type(config["dropout"])) == (int, float)
    assert config["input_shape"] == [92, 92, 1] and type(config["input_shape"][0]) is int
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").layout.num_classes == 3
    assert IoU(np.int64(3)).num_classes == 3
    tiles = make_dataset(synthetic_cells(2, size=64), tile_size=np.int64(44),
                         batch_size=np.int64(2), depth=np.int64(2), seed=np.int64(1))
    assert next(iter(tiles))[0].shape == (2, 44, 44, 1)
    free = build_unet((None, None, 1), 2, filters=4, depth=2)
    assert predict_tiled(free, np.zeros((37, 53)), tile_size=np.int64(64),
                         batch_size=np.int64(2)).shape == (37, 53, 2)
    with pytest.raises(ValueError, match=r"tile_size must be a positive int .* got 64\.0"):
        predict_tiled(free, np.zeros((37, 53)), tile_size=64.0)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got None"):
        build_unet((None, None, 1), 2, dropout=None)
