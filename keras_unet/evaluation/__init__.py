"""The evaluation measures of the paper and of the field, on instance label images.

Per pair of label images (0 background, 1..N objects), one module per kind of measure:

* :mod:`~keras_unet.evaluation.pixel`: :func:`pixel_iou` and :func:`pixel_dice` of every class;
* :mod:`~keras_unet.evaluation.isbi`: the ISBI 2012 EM challenge's :func:`rand_error` (and its
  ranking form over thresholds, :func:`rand_error_thresholds`), the foreground-restricted
  :func:`variation_of_information_error` and the topology-aware :func:`warping_error`;
* :mod:`~keras_unet.evaluation.matching`: :func:`matching` of objects by IoU as StarDist does it
  (precision, recall, F1, the "AP" of the Data Science Bowl, panoptic quality;
  :func:`matching_dataset` pools images) and the Cell Tracking Challenge's :func:`seg_score`
  (:func:`seg_dataset`);
* :mod:`~keras_unet.evaluation.report`: :func:`evaluate_labels` (every measure of one pair) and
  the :class:`EvaluationReport` table, CSV and JSON;
* :mod:`~keras_unet.evaluation.drivers`: :func:`evaluate_model` and its kin, which predict
  samples and tabulate them, :func:`evaluate_classes` for semantic masks, and
  :func:`best_cell_settings`, the instance method and cut-off ``unet train`` chooses on its
  validation images and records in the model.

Unlabelled pixels of the ground truth (-1, partial annotations) are left out of every measure
(:mod:`~keras_unet.evaluation.label_images`). Every measure takes the ground truth first and
the prediction second, as StarDist, scikit-image and Keras do.

Example:
    >>> import numpy as np
    >>> from keras_unet import evaluation
    >>> truth = np.array([[0, 1, 1, 0, 2, 2]])
    >>> evaluation.matching(truth, truth, 0.5).f1, evaluation.seg_score(truth, truth)
    (1.0, 1.0)
"""

from keras_unet.evaluation.drivers import (
                                           MIN_SIZE_CANDIDATES,
                                           best_cell_settings,
                                           best_min_size,
                                           evaluate_classes,
                                           evaluate_model,
                                           evaluate_probabilities,
                                           evaluate_samples,
                                           object_f1,
)
from keras_unet.evaluation.isbi import (
                                           ISBI_THRESHOLDS,
                                           rand_error,
                                           rand_error_thresholds,
                                           variation_of_information_error,
                                           warp,
                                           warping_error,
)
from keras_unet.evaluation.matching import (
                                           DEFAULT_THRESHOLDS,
                                           Matching,
                                           matching,
                                           matching_dataset,
                                           seg_dataset,
                                           seg_score,
)
from keras_unet.evaluation.pixel import pixel_dice, pixel_iou
from keras_unet.evaluation.report import (
                                           CLASS_POOLING,
                                           METRICS,
                                           POOLING,
                                           PROBABILITY_METRICS,
                                           EvaluationReport,
                                           evaluate_labels,
)

__all__ = ["CLASS_POOLING", "DEFAULT_THRESHOLDS", "ISBI_THRESHOLDS", "METRICS",
           "MIN_SIZE_CANDIDATES", "POOLING", "PROBABILITY_METRICS", "EvaluationReport",
           "Matching", "best_cell_settings", "best_min_size", "evaluate_classes",
           "evaluate_labels", "evaluate_model", "evaluate_probabilities", "evaluate_samples",
           "matching", "matching_dataset", "object_f1", "pixel_dice", "pixel_iou", "rand_error",
           "rand_error_thresholds", "seg_dataset", "seg_score", "variation_of_information_error",
           "warp", "warping_error"]
