import keras
import numpy as np
import pytest

from keras_unet.losses import CrossentropyDiceLoss, DiceLoss, WeightedCrossentropy

RNG = np.random.default_rng(42)


def _probabilities(shape):
    logits = RNG.normal(size=shape).astype("float32")
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return logits, exp / exp.sum(-1, keepdims=True)


def _centre(array, size):
    offset = (array.shape[1] - size) // 2
    return array[:, offset:offset + size, offset:offset + size]


def _reference_weighted_ce(labels, probabilities, weights, class_weights=None):
    picked = np.take_along_axis(probabilities, labels[..., None], axis=-1)[..., 0]
    loss = -np.log(picked) * weights
    if class_weights is not None:
        loss = loss * np.asarray(class_weights)[labels]
    return loss.mean()


def test_weighted_crossentropy_equals_numpy_mean_with_weight_map():
    _, probabilities = _probabilities((3, 8, 8, 2))
    labels = RNG.integers(0, 2, (3, 8, 8))
    weights = RNG.uniform(0.5, 12.0, (3, 8, 8)).astype("float32")
    value = WeightedCrossentropy()(labels, probabilities, sample_weight=weights)
    np.testing.assert_allclose(float(value),
                               _reference_weighted_ce(labels, probabilities, weights), rtol=1e-5)


def test_labels_and_weights_larger_than_prediction_are_centre_cropped():
    _, probabilities = _probabilities((2, 6, 6, 3))
    labels = RNG.integers(0, 3, (2, 10, 10, 1))
    weights = RNG.uniform(0.5, 5.0, (2, 10, 10)).astype("float32")
    value = WeightedCrossentropy()(labels, probabilities, sample_weight=weights)
    expected = _reference_weighted_ce(_centre(labels[..., 0], 6), probabilities,
                                      _centre(weights, 6))
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)


def test_class_weights_and_logits():
    logits, probabilities = _probabilities((2, 5, 5, 3))
    labels = RNG.integers(0, 3, (2, 5, 5))
    weights = np.ones((2, 5, 5), "float32")
    loss = WeightedCrossentropy(class_weights=[0.2, 1.0, 3.0], from_logits=True)
    expected = _reference_weighted_ce(labels, probabilities, weights, [0.2, 1.0, 3.0])
    np.testing.assert_allclose(float(loss(labels, logits)), expected, rtol=1e-5)


def test_per_sample_weights_still_work():
    _, probabilities = _probabilities((2, 4, 4, 2))
    labels = RNG.integers(0, 2, (2, 4, 4))
    per_sample = np.array([1.0, 3.0], "float32")
    expected = _reference_weighted_ce(labels, probabilities,
                                      np.broadcast_to(per_sample[:, None, None], (2, 4, 4)))
    value = WeightedCrossentropy()(labels, probabilities, sample_weight=per_sample)
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)


def test_loss_is_float32_for_bfloat16_predictions():
    import tensorflow as tf

    _, probabilities = _probabilities((1, 4, 4, 2))
    labels = RNG.integers(0, 2, (1, 4, 4))
    value = WeightedCrossentropy()(labels, tf.constant(probabilities, tf.bfloat16))
    assert value.dtype == "float32"


def _reference_dice(labels, probabilities, class_ids=None):
    one_hot = np.eye(probabilities.shape[-1])[labels]
    intersection = (one_hot * probabilities).sum((1, 2))
    per_class = 1 - 2 * intersection / (one_hot.sum((1, 2)) + probabilities.sum((1, 2)) + 1e-7)
    if class_ids is not None:
        per_class = per_class[:, class_ids]
    return per_class.mean()


@pytest.mark.parametrize("class_ids", [None, [1]])
def test_dice_loss_equals_numpy(class_ids):
    _, probabilities = _probabilities((3, 7, 7, 2))
    labels = RNG.integers(0, 2, (3, 9, 9))
    value = DiceLoss(class_ids=class_ids)(labels, probabilities,
                                          sample_weight=np.ones((3, 9, 9), "float32"))
    np.testing.assert_allclose(float(value),
                               _reference_dice(_centre(labels, 7), probabilities, class_ids),
                               rtol=1e-5)


def test_combined_loss_is_weighted_sum():
    _, probabilities = _probabilities((2, 6, 6, 2))
    labels = RNG.integers(0, 2, (2, 6, 6))
    weights = RNG.uniform(1, 10, (2, 6, 6)).astype("float32")
    loss = CrossentropyDiceLoss(crossentropy_weight=0.7, dice_weight=2.0)
    expected = (0.7 * _reference_weighted_ce(labels, probabilities, weights)
                + 2.0 * _reference_dice(labels, probabilities))
    np.testing.assert_allclose(float(loss(labels, probabilities, weights)), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "loss",
    [
        WeightedCrossentropy(class_weights=[1.0, 2.0], from_logits=True),
        DiceLoss(class_ids=[1]),
        CrossentropyDiceLoss(0.5, 1.5, class_weights=[1.0, 3.0], dice_class_ids=[1]),
    ],
)
def test_config_round_trip(loss):
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
