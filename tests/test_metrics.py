import keras
import numpy as np
import pytest

from keras_unet.metrics import Dice, IoU

RNG = np.random.default_rng(7)


def _confusion(labels, predictions, num_classes):
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels.ravel(), predictions.ravel()), 1)
    return matrix


def _reference(labels, predictions, num_classes, target_class_ids, kind):
    matrix = _confusion(labels, predictions, num_classes)
    tp = np.diag(matrix).astype(float)
    fp = matrix.sum(0) - tp
    fn = matrix.sum(1) - tp
    if kind == "iou":
        denominator, numerator = tp + fp + fn, tp
    else:
        denominator, numerator = 2 * tp + fp + fn, 2 * tp
    scores = [numerator[k] / denominator[k] for k in target_class_ids if denominator[k] > 0]
    return float(np.mean(scores))


@pytest.mark.parametrize("metric_class, kind", [(IoU, "iou"), (Dice, "dice")])
@pytest.mark.parametrize("target_class_ids", [None, [1], [0, 2]])
def test_metric_equals_numpy_over_concatenated_batches(metric_class, kind, target_class_ids):
    num_classes = 3
    metric = metric_class(num_classes, target_class_ids=target_class_ids)
    all_labels, all_predictions = [], []
    for _ in range(4):
        scores = RNG.normal(size=(2, 6, 6, num_classes)).astype("float32")  # logits work too
        labels = RNG.integers(0, num_classes, (2, 10, 10))  # larger: centre-cropped
        metric.update_state(labels, scores, sample_weight=RNG.uniform(0.1, 9, (2, 10, 10)))
        all_labels.append(labels[:, 2:8, 2:8])
        all_predictions.append(scores.argmax(-1))
    expected = _reference(np.concatenate(all_labels), np.concatenate(all_predictions),
                          num_classes, target_class_ids or range(num_classes), kind)
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-6)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_zero_weight_pixels_are_masked_not_weighted():
    metric = IoU(2, target_class_ids=[1])
    probabilities = np.zeros((1, 1, 3, 2), "float32")
    probabilities[..., 1] = [0.9, 0.9, 0.1]
    probabilities[..., 0] = 1 - probabilities[..., 1]
    labels = np.array([[[1, 0, 1]]])
    metric.update_state(labels, probabilities, sample_weight=np.array([[[5.0, 0.0, 2.0]]]))
    assert float(metric.result()) == pytest.approx(0.5)  # TP=1, FN=1; the FP pixel is masked


def test_metrics_accept_channel_axis_labels_and_serialise():
    metric = Dice(2, target_class_ids=[1], name="dice_fg")
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(restored, Dice) and restored.get_config() == metric.get_config()
    probabilities = np.eye(2, dtype="float32")[RNG.integers(0, 2, (2, 4, 4))]
    labels = probabilities.argmax(-1)[..., None]
    restored.update_state(labels, probabilities)
    assert float(restored.result()) == pytest.approx(1.0)


@pytest.mark.parametrize("metric_class", [IoU, Dice])
def test_one_class_is_refused_not_mismeasured(metric_class):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2, got 1"):
        metric_class(1)
