import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_unet.losses import (
    CrossentropyDiceLoss,
    DiceLoss,
    WeightedCrossentropy,
    crossentropy_dice,
    soft_dice,
    weighted_crossentropy,
)

RNG = np.random.default_rng(42)
LOSS_CLASSES = [WeightedCrossentropy, DiceLoss, CrossentropyDiceLoss]


def _probabilities(shape):
    logits = RNG.normal(size=shape).astype("float32")
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return logits, exp / exp.sum(-1, keepdims=True)


def _centre(array, size):
    offset = (array.shape[1] - size) // 2
    return array[:, offset:offset + size, offset:offset + size]


def _reference_weighted_ce(labels, probabilities, weights, class_weights=None):
    """Per-image mean of the weighted cross-entropy, (B,)."""
    picked = np.take_along_axis(probabilities, labels[..., None], axis=-1)[..., 0]
    loss = -np.log(picked) * weights
    if class_weights is not None:
        loss = loss * np.asarray(class_weights)[labels]
    return loss.mean((1, 2))


def _reference_dice(labels, probabilities, class_ids=None, smooth=1.0):
    """Per-image smoothed soft Dice loss averaged over classes, (B,)."""
    one_hot = np.eye(probabilities.shape[-1])[labels]
    intersection = (one_hot * probabilities).sum((1, 2))
    total = one_hot.sum((1, 2)) + probabilities.sum((1, 2))
    per_class = 1 - (2 * intersection + smooth) / (total + smooth)
    if class_ids is not None:
        per_class = per_class[:, class_ids]
    return per_class.mean(-1)


def _reference(loss_class, labels, probabilities, weights):
    if loss_class is WeightedCrossentropy:
        return _reference_weighted_ce(labels, probabilities, weights)
    if loss_class is DiceLoss:
        return _reference_dice(labels, probabilities)
    return (_reference_weighted_ce(labels, probabilities, weights)
            + _reference_dice(labels, probabilities))


def test_weighted_crossentropy_equals_numpy_mean_with_weight_map():
    _, probabilities = _probabilities((3, 8, 8, 2))
    labels = RNG.integers(0, 2, (3, 8, 8))
    weights = RNG.uniform(0.5, 12.0, (3, 8, 8)).astype("float32")
    value = WeightedCrossentropy()(labels, probabilities, sample_weight=weights)
    np.testing.assert_allclose(float(value),
                               _reference_weighted_ce(labels, probabilities, weights).mean(),
                               rtol=1e-5)


@pytest.mark.parametrize("weight_axis", [False, True])
def test_labels_and_weights_larger_than_prediction_are_centre_cropped(weight_axis):
    _, probabilities = _probabilities((2, 6, 6, 3))
    labels = RNG.integers(0, 3, (2, 10, 10, 1))
    weights = RNG.uniform(0.5, 5.0, (2, 10, 10)).astype("float32")
    given = weights[..., None] if weight_axis else weights
    value = WeightedCrossentropy()(labels, probabilities, sample_weight=given)
    expected = _reference_weighted_ce(_centre(labels[..., 0], 6), probabilities,
                                      _centre(weights, 6))
    np.testing.assert_allclose(float(value), expected.mean(), rtol=1e-5)


def test_pure_function_crops_the_weight_map_too():
    _, probabilities = _probabilities((2, 4, 4, 2))
    labels = RNG.integers(0, 2, (2, 8, 8))
    weights = RNG.uniform(0.5, 5.0, (2, 8, 8)).astype("float32")
    per_pixel = weighted_crossentropy(labels, probabilities, pixel_weights=weights)
    assert tuple(per_pixel.shape) == (2, 4, 4)
    np.testing.assert_allclose(
        np.asarray(per_pixel).mean((1, 2)),
        _reference_weighted_ce(_centre(labels, 4), probabilities, _centre(weights, 4)), rtol=1e-5)


def test_class_weights_and_logits():
    logits, probabilities = _probabilities((2, 5, 5, 3))
    labels = RNG.integers(0, 3, (2, 5, 5))
    weights = np.ones((2, 5, 5), "float32")
    loss = WeightedCrossentropy(class_weights=[0.2, 1.0, 3.0], from_logits=True)
    expected = _reference_weighted_ce(labels, probabilities, weights, [0.2, 1.0, 3.0])
    np.testing.assert_allclose(float(loss(labels, logits)), expected.mean(), rtol=1e-5)


def test_per_sample_weights_still_work():
    _, probabilities = _probabilities((2, 4, 4, 2))
    labels = RNG.integers(0, 2, (2, 4, 4))
    per_sample = np.array([1.0, 3.0], "float32")
    expected = _reference_weighted_ce(labels, probabilities,
                                      np.broadcast_to(per_sample[:, None, None], (2, 4, 4)))
    value = WeightedCrossentropy()(labels, probabilities, sample_weight=per_sample)
    np.testing.assert_allclose(float(value), expected.mean(), rtol=1e-5)


def test_loss_is_float32_for_bfloat16_predictions():
    _, probabilities = _probabilities((1, 4, 4, 2))
    labels = RNG.integers(0, 2, (1, 4, 4))
    value = WeightedCrossentropy()(labels, tf.constant(probabilities, tf.bfloat16))
    assert value.dtype == "float32"


@pytest.mark.parametrize("class_ids", [None, [1]])
def test_dice_loss_equals_numpy_and_ignores_the_weight_map(class_ids):
    _, probabilities = _probabilities((3, 7, 7, 2))
    labels = RNG.integers(0, 2, (3, 9, 9))
    weight_map = RNG.uniform(0.5, 10.0, (3, 9, 9)).astype("float32")
    value = DiceLoss(class_ids=class_ids)(labels, probabilities, sample_weight=weight_map)
    expected = _reference_dice(_centre(labels, 7), probabilities, class_ids)
    np.testing.assert_allclose(float(value), expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(soft_dice(labels, probabilities, class_ids), expected, rtol=1e-5)


def test_combined_loss_is_weighted_sum():
    _, probabilities = _probabilities((2, 6, 6, 2))
    labels = RNG.integers(0, 2, (2, 6, 6))
    weights = RNG.uniform(1, 10, (2, 6, 6)).astype("float32")
    loss = CrossentropyDiceLoss(crossentropy_weight=0.7, dice_weight=2.0)
    expected = (0.7 * _reference_weighted_ce(labels, probabilities, weights)
                + 2.0 * _reference_dice(labels, probabilities))
    np.testing.assert_allclose(float(loss(labels, probabilities, weights)), expected.mean(),
                               rtol=1e-5)
    np.testing.assert_allclose(
        crossentropy_dice(labels, probabilities, 0.7, 2.0, pixel_weights=weights), expected,
        rtol=1e-5)


# Tiles without cells (issue 13.6): the Dice term must see false positives there.

def _empty_tile_logits(false_positives: bool):
    logits = np.zeros((1, 8, 8, 2), "float32")
    logits[..., 0], logits[..., 1] = 5.0, -5.0  # confidently background
    if false_positives:
        logits[0, 2:5, 2:5] = [-1.0, 1.0]  # not saturated, so the softmax passes gradients
    return tf.constant(logits)


@pytest.mark.parametrize("loss", [
    DiceLoss(class_ids=[1], from_logits=True),
    DiceLoss(from_logits=True),
    CrossentropyDiceLoss(crossentropy_weight=0.0, dice_class_ids=[1], from_logits=True),
], ids=["dice-foreground", "dice-all", "combined-dice-term"])
def test_dice_penalises_false_positives_on_a_tile_without_cells(loss):
    labels = np.zeros((1, 8, 8), "int32")
    logits = _empty_tile_logits(false_positives=True)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        with_false_positives = loss(labels, logits)
    gradient = tape.gradient(with_false_positives, logits).numpy()
    correct = loss(labels, _empty_tile_logits(false_positives=False))
    assert float(with_false_positives) > float(correct) + 0.1
    # Lowering the foreground score of a false-positive pixel lowers the loss.
    assert (gradient[0, 2:5, 2:5, 1] > 1e-4).all()


@pytest.mark.parametrize("loss_class", [DiceLoss, CrossentropyDiceLoss])
@pytest.mark.parametrize("empty", [True, False])
def test_perfect_prediction_has_zero_dice_loss(loss_class, empty):
    labels = np.zeros((2, 6, 6), "int32") if empty else RNG.integers(0, 2, (2, 6, 6))
    perfect = np.eye(2, dtype="float32")[labels]
    assert float(loss_class()(labels, perfect)) == pytest.approx(0.0, abs=1e-6)


# The Keras loss contract: reduction, dtype, configuration (issue 14.4).

@pytest.mark.parametrize("loss_class", LOSS_CLASSES)
def test_reductions_are_over_per_image_values(loss_class):
    _, probabilities = _probabilities((3, 6, 6, 2))
    labels = RNG.integers(0, 2, (3, 10, 10))
    weights = RNG.uniform(1, 10, (3, 10, 10)).astype("float32")
    per_image = _reference(loss_class, _centre(labels, 6), probabilities, _centre(weights, 6))
    for reduction in (None, "none"):
        values = loss_class(reduction=reduction)(labels, probabilities, weights)
        assert tuple(values.shape) == (3,)
        np.testing.assert_allclose(values, per_image, rtol=1e-5)
    total = loss_class(reduction="sum")(labels, probabilities, weights)
    np.testing.assert_allclose(float(total), per_image.sum(), rtol=1e-5)
    mean = loss_class(reduction="sum_over_batch_size")(labels, probabilities, weights)
    np.testing.assert_allclose(float(mean), per_image.mean(), rtol=1e-5)
    image_weights = np.array([1.0, 0.0, 3.0], "float32")
    weighted = loss_class(reduction="mean_with_sample_weight")(labels, probabilities,
                                                                image_weights)
    unmapped = _reference(loss_class, _centre(labels, 6), probabilities, np.ones((3, 6, 6)))
    np.testing.assert_allclose(float(weighted), (unmapped * image_weights).sum() / 4, rtol=1e-5)


@pytest.mark.parametrize("loss_class", LOSS_CLASSES)
def test_dtype_is_honoured(loss_class):
    _, probabilities = _probabilities((2, 5, 5, 2))
    probabilities = probabilities.astype("float64")
    probabilities /= probabilities.sum(-1, keepdims=True)  # sums to 1 in float64 too
    labels = RNG.integers(0, 2, (2, 5, 5))
    weights = RNG.uniform(1, 10, (2, 5, 5))
    assert loss_class()(labels, probabilities, weights).dtype == "float32"
    value = loss_class(dtype="float64")(labels, probabilities, weights)
    assert value.dtype == "float64"
    # Computed in float64, not merely cast to it: far below float32's 1e-7 rounding.
    expected = _reference(loss_class, labels, probabilities, weights).mean()
    np.testing.assert_allclose(float(value), expected, rtol=1e-12)


@pytest.mark.parametrize("loss", [
    WeightedCrossentropy(class_weights=[1.0, 2.0], from_logits=True, reduction="sum",
                         dtype="float64"),
    DiceLoss(class_ids=[1], from_logits=True, smooth=0.5, reduction=None, name="dice_fg"),
    CrossentropyDiceLoss(0.5, 1.5, class_weights=[1.0, 3.0], dice_class_ids=[1],
                         from_logits=True, dice_smooth=2.0, reduction="sum", dtype="float64"),
], ids=["crossentropy", "dice", "combined"])
def test_config_round_trip_gives_the_same_loss(loss):
    logits, _ = _probabilities((2, 6, 6, 2))
    labels = RNG.integers(0, 2, (2, 8, 8))
    weights = RNG.uniform(1, 10, (2, 8, 8)).astype("float32")
    config = loss.get_config()
    assert {"name", "reduction", "dtype"} <= set(config)
    for restored in (type(loss).from_config(config),
                     keras.losses.deserialize(keras.losses.serialize(loss))):
        assert type(restored) is type(loss)
        assert restored.get_config() == config
        np.testing.assert_array_equal(restored(labels, logits, weights),
                                      loss(labels, logits, weights))


# One output channel (issue 13.6): refused, never silently mis-measured.

@pytest.mark.parametrize("loss_class", LOSS_CLASSES)
def test_one_channel_predictions_are_refused(loss_class):
    with pytest.raises(ValueError, match="K >= 2 exclusive classes.*num_classes=2"):
        loss_class()(np.zeros((1, 4, 4), "int32"), np.full((1, 4, 4, 1), 0.5, "float32"))


@pytest.mark.parametrize("weights", ["maps", "maps with a channel", "per image"])
def test_weights_of_unknown_rank_weigh_as_weights_of_known_rank(weights):
    """``fit`` traces its step again, with weights of unknown rank, when one model is fitted with
    weight maps and then per-image weights (or a pipeline leaves the rank unset): the losses
    and metrics give what they give for the same weights of known rank."""
    from keras_unet.metrics import IoU

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, (2, 8, 8)).astype("int32")  # cropped to the 4x4 output
    scores = tf.nn.softmax(rng.normal(size=(2, 4, 4, 2)).astype("float32")).numpy()
    given = {"maps": rng.random((2, 8, 8)), "maps with a channel": rng.random((2, 8, 8, 1)),
             "per image": rng.random(2)}[weights].astype("float32")
    specs = [tf.TensorSpec([None] * 3, tf.int32), tf.TensorSpec([None] * 3 + [2], tf.float32),
             tf.TensorSpec(None, tf.float32)]
    for loss in (WeightedCrossentropy(), DiceLoss(), CrossentropyDiceLoss()):
        unknown = tf.function(lambda y, p, w, loss=loss: loss(y, p, sample_weight=w),
                              input_signature=specs)
        np.testing.assert_allclose(unknown(labels, scores, given),
                                   loss(labels, scores, sample_weight=given), rtol=1e-6)
    known, traced = IoU(2), IoU(2)
    known.update_state(labels, scores, sample_weight=given)
    tf.function(traced.update_state, input_signature=specs)(labels, scores, given)
    np.testing.assert_allclose(traced.result(), known.result(), rtol=1e-6)


@pytest.mark.parametrize("loss_class", LOSS_CLASSES)
def test_a_class_id_beyond_the_predictions_classes_stops_the_step_by_name(loss_class):
    """A 0/255 mask given as labels: Dice once trained on it silently (255 is no class), the
    cross-entropy stopped deep in TensorFlow."""
    labels = np.zeros((1, 4, 4), "int32")
    labels[0, 1] = 255
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"labels hold a class id >= 2, but the prediction has 2 classes"):
        loss_class()(labels, _probabilities((1, 4, 4, 2))[1])
    labels[0, 1] = -1  # unlabelled: fine
    assert np.isfinite(float(loss_class()(labels, _probabilities((1, 4, 4, 2))[1])))


def test_the_metrics_refuse_class_ids_and_class_counts_they_cannot_score():
    from keras_unet.metrics import Dice, IoU

    with pytest.raises(ValueError, match="iou counts 2 classes, but the prediction has 3"):
        IoU(2).update_state(np.zeros((1, 4, 4)), _probabilities((1, 4, 4, 3))[1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels hold a class id >= 2"):
        Dice(2).update_state(np.full((1, 4, 4), 255), _probabilities((1, 4, 4, 2))[1])


def test_labels_weights_and_class_arguments_that_do_not_fit_the_prediction_are_named():
    from keras_unet.metrics import IoU

    scores = _probabilities((1, 4, 4, 2))[1]
    smaller = r"cannot centre-crop size \(2, 2\) to the larger \(4, 4\): labels and weight maps"
    with pytest.raises(ValueError, match=smaller):
        WeightedCrossentropy()(np.zeros((1, 2, 2)), scores)
    with pytest.raises(ValueError, match=smaller):
        WeightedCrossentropy()(np.zeros((1, 4, 4)), scores, sample_weight=np.ones((1, 2, 2)))
    with pytest.raises(ValueError, match=smaller):
        IoU(2).update_state(np.zeros((1, 2, 2)), scores)
    with pytest.raises(ValueError, match="class_weights gives 1 factors, but the prediction has 2"):
        WeightedCrossentropy(class_weights=[1.0])(np.ones((1, 4, 4)), scores)
    with pytest.raises(ValueError, match=r"class_ids \[5\] name classes the prediction does not"):
        DiceLoss(class_ids=[5])(np.zeros((1, 4, 4)), scores)
