"""Cells and scores in 3D: instance_labels and its block-wise form on volumes, the physical
distance watershed, and the evaluation (F1/AP/PQ, SEG as the Cell Tracking Challenge computes
it, Rand, VI) of volumes."""

import math

import numpy as np
import pytest
import scipy.ndimage

from keras_unet.data import synthetic_volumes
from keras_unet.evaluation import evaluate_probabilities, matching, seg_score
from keras_unet.evaluation.isbi import rand_error, rand_error_thresholds
from keras_unet.instances import instance_labels
from keras_unet.instances.blockwise import blockwise_instance_labels
from keras_unet.weight_maps import class_labels


@pytest.fixture(scope="module")
def nuclei():
    return synthetic_volumes(1, size=32, seed=6)[0].labels


def _same_partition(a, b):
    """Whether two label volumes hold the same objects (ids may differ)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return (len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))
            and ((pairs[0] == 0) == (pairs[1] == 0)).all())


@pytest.mark.parametrize("num_classes, method", [(2, "components"), (3, "watershed"),
                                                 (2, "watershed")])
def test_perfect_probabilities_give_the_nuclei_back(nuclei, num_classes, method):
    probabilities = np.eye(num_classes)[class_labels(nuclei, num_classes)]
    labels = instance_labels(probabilities, method=method, min_size=0)
    assert labels.shape == nuclei.shape and labels.dtype == np.int32
    result = matching(nuclei, labels, 0.5)
    assert result.f1 > (0.9 if method == "watershed" and num_classes == 2 else 0.999)
    if num_classes == 3 or method == "components":
        assert _same_partition(nuclei, labels) and seg_score(nuclei, labels) == 1.0


def _balls(shape, centres, radius, step=1.0):
    """Cell probabilities of balls of ``radius`` at physical ``centres``, planes ``step`` apart."""
    z, y, x = np.meshgrid(np.arange(shape[0]) * step, np.arange(shape[1]), np.arange(shape[2]),
                          indexing="ij")
    inside = np.zeros(shape, bool)
    for cz, cy, cx in centres:
        inside |= (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= radius**2
    return np.eye(2)[inside.astype(int)]


def test_the_distance_watershed_measures_physical_distances():
    """Two touching balls: the isotropic volume and the same one sampled every third plane
    (with its spacing) are split alike."""
    centres = [(15, 15, 10), (15, 15, 21)]
    whole = instance_labels(_balls((31, 31, 32), centres, 6.5), method="watershed", min_size=0)
    coarse = instance_labels(_balls((11, 31, 32), centres, 6.5, step=3.0), method="watershed",
                             min_size=0, spacing=(3.0, 1.0, 1.0))
    assert whole.max() == coarse.max() == 2
    assert matching(whole[::3], coarse, 0.5).f1 == 1.0


def test_a_model_s_spacing_is_used(nuclei):
    from keras_unet import build_unet

    model = build_unet((None, None, None, 1), 2, filters=2, depth=1, spacing=(3.0, 1.0, 1.0))
    probabilities = _balls((11, 31, 32), [(15, 15, 10), (15, 15, 21)], 6.5, step=3.0)
    assert (instance_labels(probabilities, method="watershed", model=model) == instance_labels(
        probabilities, method="watershed", spacing=(3.0, 1.0, 1.0))).all()


@pytest.mark.parametrize("num_classes, method, block", [(2, "components", 7),
                                                        (3, "watershed", (9, 13, 11))])
def test_blockwise_volume_labels_are_the_whole_volumes(nuclei, num_classes, method, block):
    """One label per nucleus across block faces: the block-wise labels are the whole volume's."""
    probabilities = np.eye(num_classes)[class_labels(nuclei, num_classes)]
    whole = instance_labels(probabilities, method=method, min_size=0)
    blocks = blockwise_instance_labels(probabilities, block_size=block, method=method,
                                       min_size=0, halo=24)
    assert _same_partition(whole, blocks)
    assert blocks.max() == whole.max()


def _seg_reference(truth, prediction):
    """The challenge's SEG by its definition, object by object."""
    scores = []
    for r in np.unique(truth[truth > 0]):
        mask = truth == r
        ids, counts = np.unique(prediction[mask], return_counts=True)
        best = [(i, c) for i, c in zip(ids, counts) if i > 0 and c > 0.5 * mask.sum()]
        if best:
            other = prediction == best[0][0]
            scores.append((mask & other).sum() / (mask | other).sum())
        else:
            scores.append(0.0)
    return float(np.mean(scores))


def test_seg_of_volumes_is_the_challenges(nuclei):
    rng = np.random.default_rng(0)
    eroded = np.where(scipy.ndimage.binary_erosion(nuclei > 0), nuclei, 0)
    shifted = np.roll(nuclei, 2, axis=0)
    merged = np.where(nuclei % 5 == 0, nuclei + 1, nuclei) * (nuclei > 0)
    for prediction in (eroded, shifted, merged, rng.permutation(nuclei.ravel()).reshape(
            nuclei.shape)):
        assert seg_score(nuclei, prediction) == pytest.approx(_seg_reference(nuclei, prediction))


def test_evaluating_volumes_scores_every_measure_defined_in_3d(nuclei):
    from types import SimpleNamespace

    sample = SimpleNamespace(image=nuclei, labels=nuclei, path="v.tif")
    report = evaluate_probabilities(lambda volume: np.eye(3)[class_labels(volume, 3)], [sample])
    row = report.rows[0]
    assert (row["f1_50"], row["ap_50_95"], row["pq_50"], row["seg"]) == (1.0, 1.0, 1.0, 1.0)
    assert (row["rand_error"], row["iou_foreground"]) == (0.0, 1.0)
    assert row["vi_error"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(row["warping_error"])  # a 2D topological measure
    assert rand_error(nuclei, np.where(nuclei > 0, 1, 0)) > 0.5  # all merged
    error, _ = rand_error_thresholds(nuclei, (nuclei > 0).astype(float))
    assert error == 0.0


def test_the_napari_segment_job_takes_a_stack_layer_as_volumes_as_unet_predict_does(tmp_path):
    from types import SimpleNamespace

    from keras_unet import build_unet
    from keras_unet.inference import load_network
    from keras_unet.napari.jobs import segment
    from keras_unet.napari.layer_data import image_input

    build_unet((None, None, None, 1), 2, filters=4, depth=2).save(tmp_path / "vol.keras")
    volumes = np.stack([sample.image for sample in synthetic_volumes(2, size=24, seed=3)])
    layer = SimpleNamespace(name="stacks", data=volumes, multiscale=False, rgb=False,
                            scale=(1.0,) * 4, translate=(0.0,) * 4)  # time, z, y, x
    found = segment(tmp_path / "vol.keras", image_input(layer), foreground=True)
    network = load_network(tmp_path / "vol.keras")
    for index, volume in enumerate(volumes):  # what unet predict --instances makes of each
        expected = instance_labels(network.predict(volume), **network.cells.options)
        np.testing.assert_array_equal(found.labels[index], expected)
    assert found.kind == "cells" and found.foreground.shape == volumes.shape
    flat = SimpleNamespace(name="plane", data=volumes[0, 0], multiscale=False, rgb=False,
                           scale=(1.0, 1.0), translate=(0.0, 0.0))
    with pytest.raises(ValueError, match=r"^image 'plane' has shape \(24, 24\), but --model "
                                         ".* is a 3D U-Net: it takes a stack of planes"):
        segment(tmp_path / "vol.keras", image_input(flat))
