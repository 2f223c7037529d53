"""The foundation's promise: build, compile, fit, save as .keras, load with safe_mode=True."""

import keras
import numpy as np
import pytest

from keras_unet import build_unet
from keras_unet.losses import CrossentropyDiceLoss, DiceLoss, WeightedCrossentropy
from keras_unet.metrics import Dice, IoU


def _data(seed=0, n=4, size=92):
    rng = np.random.default_rng(seed)
    images = rng.random((n, size, size, 1), dtype="float32")
    labels = (images[..., 0] > 0.5).astype("int32")
    weights = rng.uniform(1.0, 10.0, (n, size, size)).astype("float32")
    return images, labels, weights


def _compiled_model(loss):
    model = build_unet((None, None, 1), 2, filters=4, depth=2, batch_norm=True)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.99), loss=loss,
                  metrics=[IoU(2, target_class_ids=[1]), Dice(2)])
    return model


def test_two_step_fit_on_random_data_learns_something():
    images, labels, weights = _data()
    model = _compiled_model(WeightedCrossentropy())
    history = model.fit(images, labels, sample_weight=weights, batch_size=2, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "iou", "dice"}
    assert np.isfinite(history.history["loss"][0])
    assert 0.0 <= history.history["iou"][0] <= 1.0


@pytest.mark.parametrize("loss", [WeightedCrossentropy(class_weights=[1.0, 2.0]),
                                  DiceLoss(class_ids=[1], smooth=2.0, reduction="sum"),
                                  CrossentropyDiceLoss(dice_class_ids=[1], dtype="float64")],
                         ids=["crossentropy", "dice", "combined"])
def test_keras_file_round_trip_with_safe_mode(tmp_path, loss):
    images, labels, weights = _data()
    model = _compiled_model(loss)
    model.fit(images, labels, sample_weight=weights, batch_size=2, epochs=1, verbose=0)
    path = tmp_path / "unet.keras"
    model.save(path)
    restored = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(model.predict(images, verbose=0),
                                  restored.predict(images, verbose=0))
    assert type(restored.loss) is type(loss)
    assert restored.loss.get_config() == loss.get_config()
    # The same loss on the same batch, weight maps at the input size (centre-cropped).
    evaluated = [m.evaluate(images, labels, sample_weight=weights, batch_size=2, verbose=0,
                            return_dict=True)["loss"] for m in (model, restored)]
    np.testing.assert_allclose(evaluated[1], evaluated[0], rtol=1e-6)
    assert evaluated[0] > 0
    # The optimizer state and compiled metrics came back too: training continues.
    assert restored.optimizer.iterations.numpy() == model.optimizer.iterations.numpy()
    restored.fit(images, labels, sample_weight=weights, batch_size=2, epochs=1, verbose=0)
    metric_names = {m.name for m in restored.metrics[1].metrics}
    assert metric_names == {"iou", "dice"}


def test_mixed_bfloat16_training_keeps_outputs_and_loss_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    images, labels, weights = _data(size=44)
    model = _compiled_model(WeightedCrossentropy())
    assert model.get_layer("enc1_conv1").compute_dtype == "bfloat16"
    history = model.fit(images, labels, sample_weight=weights, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    outputs = model(images[:1])
    assert outputs.dtype == "float32"
    assert model.compute_loss(images[:1], labels[:1], outputs, weights[:1]).dtype == "float32"
