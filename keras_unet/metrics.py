"""Stateful segmentation metrics: IoU and Dice over an accumulated confusion matrix.

Both extend ``keras.metrics.IoU``: they take class probabilities or logits (argmax is taken) and
sparse labels, accumulate across batches, centre-crop labels that are larger than the prediction
(valid padding) and treat ``sample_weight`` as a mask: pixels of weight 0 are left out, every
other pixel counts once. That way the paper's weight maps, which ``model.fit`` also hands to the
metrics, do not distort them. Unlabelled pixels (negative labels,
:data:`keras_unet.class_layout.UNLABELLED`, or ``ignore_class``) are left out too.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_unet.errors import InputError
from keras_unet.layers import checked_class_ids, crop_to_match, split_weights
from keras_unet.scalars import python_int


@keras.saving.register_keras_serializable(package="keras_unet")
class IoU(keras.metrics.IoU):
    """Mean intersection-over-union over ``target_class_ids`` (default: all classes).

    ``IoU_k = TP_k / (TP_k + FP_k + FN_k)`` from the confusion matrix of all batches seen since the
    last reset; classes absent from both labels and predictions are left out of the mean.

    Args:
        num_classes: number of classes of the model output (>= 2).
        target_class_ids: classes to average (``[1]`` gives the foreground IoU of a 2-class model).
        name: metric name.
        ignore_class: optional label value to leave out.
        dtype: dtype of the confusion matrix (``"int64"`` so large evaluations do not overflow).

    Example:
        >>> import numpy as np
        >>> metric = IoU(2)
        >>> p = np.array([[[[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]]], "float32")
        >>> _ = metric.update_state(np.array([[[0, 1, 0]]]), p)
        >>> round(float(metric.result()), 4)  # class 0: 1/2, class 1: 1/2
        0.5
        >>> _ = metric.update_state(np.array([[[-1, -1, -1]]]), p)  # unlabelled: no change
        >>> round(float(metric.result()), 4)
        0.5
    """

    def __init__(
        self,
        num_classes: int,
        target_class_ids: Sequence[int] | None = None,
        name: str = "iou",
        ignore_class: int | None = None,
        dtype: str = "int64",
    ):
        num_classes = python_int(num_classes)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise InputError(
                f"num_classes must be an integer >= 2, got {num_classes!r}: the metrics take the "
                "argmax of K >= 2 exclusive class scores; a one-channel sigmoid is a two-class "
                "softmax, use num_classes=2."
            )
        if target_class_ids is None:
            target_class_ids = list(range(num_classes))
        super().__init__(
            num_classes=num_classes,
            target_class_ids=[int(c) for c in target_class_ids],
            name=name,
            dtype=dtype,
            ignore_class=ignore_class,
            sparse_y_true=True,
            sparse_y_pred=False,
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        if y_pred.shape[-1] is not None and y_pred.shape[-1] != self.num_classes:
            raise InputError(f"{self.name} counts {self.num_classes} classes, but the prediction "
                             f"has {y_pred.shape[-1]}: give the metric the model's num_classes.")
        if sample_weight is not None:
            sample_weight = ops.convert_to_tensor(sample_weight)
            if sample_weight.shape.rank is None:  # a step traced again for another rank
                pixels, images = split_weights(sample_weight, y_true)
                sample_weight = pixels * ops.reshape(images, (-1,) + (1,) * (len(pixels.shape)
                                                                            - 1))
        y_true = crop_to_match(y_true, y_pred)
        rank = len(y_pred.shape)  # 4 for images, 5 for volumes
        if len(y_true.shape) == rank:
            y_true = ops.squeeze(y_true, axis=-1)
        y_true = ops.cast(y_true, "int32")
        labelled = ops.greater_equal(y_true, 0)
        if sample_weight is not None:
            if len(sample_weight.shape) >= 3:
                sample_weight = crop_to_match(sample_weight, y_pred)
                if len(sample_weight.shape) == rank:
                    sample_weight = ops.squeeze(sample_weight, axis=-1)
            else:  # per-sample weights: broadcast over the image
                sample_weight = ops.reshape(sample_weight, (-1,) + (1,) * (rank - 2))
                sample_weight = ops.broadcast_to(sample_weight, ops.shape(y_pred)[:rank - 1])
            labelled = ops.logical_and(labelled, ops.greater(sample_weight, 0))
        return super().update_state(checked_class_ids(y_true, labelled, self.num_classes), y_pred,
                                    ops.cast(labelled, self.dtype))

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "target_class_ids": list(self.target_class_ids),
            "name": self.name,
            "ignore_class": self.ignore_class,
            "dtype": self.dtype,
        }


@keras.saving.register_keras_serializable(package="keras_unet")
class Dice(IoU):
    """Mean Dice coefficient (F1) over ``target_class_ids``: ``2 TP / (2 TP + FP + FN)``.

    Same inputs, cropping and masking as :class:`IoU`.

    Example:
        >>> import numpy as np
        >>> metric = Dice(2, target_class_ids=[1])
        >>> p = np.array([[[[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]]], "float32")
        >>> _ = metric.update_state(np.array([[[0, 1, 0]]]), p)
        >>> round(float(metric.result()), 4)  # 2*1 / (2*1 + 1 + 0)
        0.6667
    """

    def __init__(
        self,
        num_classes: int,
        target_class_ids: Sequence[int] | None = None,
        name: str = "dice",
        ignore_class: int | None = None,
        dtype: str = "int64",
    ):
        super().__init__(num_classes, target_class_ids, name, ignore_class, dtype)

    def result(self):
        matrix = ops.cast(self.total_cm, "float64")
        true_positives = ops.diagonal(matrix)
        denominator = ops.sum(matrix, axis=0) + ops.sum(matrix, axis=1)
        ids = ops.convert_to_tensor(self.target_class_ids, "int32")
        true_positives = ops.take(true_positives, ids)
        denominator = ops.take(denominator, ids)
        present = ops.greater(denominator, 0)
        dice = ops.where(present, 2.0 * true_positives / ops.maximum(denominator, 1.0), 0.0)
        count = ops.sum(ops.cast(present, "float64"))
        return ops.cast(ops.divide_no_nan(ops.sum(dice), count), "float32")
