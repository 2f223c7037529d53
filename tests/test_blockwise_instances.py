"""Cell labels block by block: cells cut by block borders get one label, as in the whole image."""

import numpy as np
import pytest
import zarr
from voronoi_cells import voronoi_cells

from keras_unet.data import synthetic_cells
from keras_unet.instances import instance_labels
from keras_unet.instances.blockwise import blockwise_instance_labels
from keras_unet.weight_maps import class_labels


def _same_objects(first, second):
    """The same objects up to their numbering: a one-to-one map of labels, background to 0."""
    pairs = np.unique(np.stack([first.ravel(), second.ravel()]), axis=1)
    return (first.max() == second.max() and pairs.shape[1] == second.max() + 1
            and len(np.unique(pairs[0])) == pairs.shape[1]
            and ((pairs[0] == 0) == (pairs[1] == 0)).all())


def _touching_cells(size=160):
    """Synthetic cells grown by 2 px until many touch, so the rings between them matter."""
    import skimage.segmentation

    labels = synthetic_cells(1, size=size, seed=3)[0].labels
    return skimage.segmentation.expand_labels(labels, 2)


@pytest.fixture(scope="module")
def separate():
    """Cells that never touch: their connected components are the cells."""
    return synthetic_cells(1, size=160, seed=3)[0].labels


@pytest.fixture(scope="module")
def truth():
    return _touching_cells()


def _straddling(labels, block):
    """How many cells a grid of ``block`` px cuts."""
    cut = 0
    for obj in range(1, labels.max() + 1):
        rows, cols = np.nonzero(labels == obj)
        cut += (rows.min() // block != rows.max() // block) or (
            cols.min() // block != cols.max() // block)
    return cut


def _noisy(labels, num_classes, seed=0):
    """One-hot classes plus noise: a map without exact ties, as a network's output is."""
    one_hot = np.eye(num_classes, dtype="float32")[class_labels(labels, num_classes)]
    return one_hot + np.random.default_rng(seed).uniform(0, 0.3, one_hot.shape).astype("float32")


def test_components_cut_by_block_borders_are_the_whole_image_components(separate, block=37):
    probabilities = _noisy(separate, 2)
    assert _straddling(separate, block) >= 10  # the test means something
    whole = instance_labels(probabilities, method="components")
    assert whole.max() >= 40
    blocks = blockwise_instance_labels(probabilities, block_size=block, method="components")
    assert _same_objects(blocks, whole)


def test_three_class_cells_cut_by_block_borders_are_the_whole_image_cells(truth, block=37):
    probabilities = _noisy(truth, 3)
    assert _straddling(truth, block) >= 10
    whole = instance_labels(probabilities)  # the 3-class seeded watershed
    assert whole.max() >= 40
    assert _same_objects(blockwise_instance_labels(probabilities, block_size=block), whole)


def test_at_exact_ties_only_pixels_on_the_line_between_two_cells_may_differ(truth):
    probabilities = np.eye(3, dtype="float32")[class_labels(truth, 3)]  # all rings tie
    whole = instance_labels(probabilities)
    blocks = blockwise_instance_labels(probabilities, block_size=48)
    assert blocks.max() == whole.max()
    majority = np.zeros(blocks.max() + 1, int)
    for obj in range(1, blocks.max() + 1):
        ids, counts = np.unique(whole[blocks == obj], return_counts=True)
        majority[obj] = ids[np.argmax(counts)]
    assert len(set(majority[1:])) == whole.max()  # one to one
    mapped = majority[blocks]
    padded = np.pad(whole, 1)
    for row, col in np.argwhere(mapped != whole):
        neighbours = padded[row:row + 3, col:col + 3][[0, 1, 1, 2], [1, 0, 2, 1]]
        assert mapped[row, col] in neighbours  # it went to the cell next door
    assert np.count_nonzero(mapped != whole) <= 5


def test_the_two_class_watershed_merges_across_blocks_with_a_halo_over_the_cells(truth):
    probabilities = np.eye(2, dtype="float32")[class_labels(truth, 2)]
    whole = instance_labels(probabilities, method="watershed")
    blocks = blockwise_instance_labels(probabilities, block_size=48, method="watershed",
                                       halo=160)
    assert whole.max() >= 30 and _same_objects(blocks, whole)


def test_membrane_cells_that_tile_the_image_get_one_label_across_blocks():
    _, membrane = voronoi_cells(150, 40, seed=4)
    noise = np.random.default_rng(5).uniform(0, 0.05, membrane.shape)
    cell = np.where(membrane, 0.1, 0.9) + noise
    probabilities = np.stack([1 - cell, cell], -1).astype("float32")
    whole = instance_labels(probabilities, method="membranes")
    blocks = blockwise_instance_labels(probabilities, block_size=50, method="membranes")
    assert whole.max() >= 30 and _straddling(whole, 50) >= 10
    pairs = np.unique(np.stack([blocks.ravel(), whole.ravel()]), axis=1)
    assert (blocks > 0).all() and pairs.shape[1] == blocks.max() == whole.max()  # one-to-one


def test_components_are_exact_for_any_block_even_snakes_across_many_blocks():
    snake = np.zeros((60, 60), int)
    snake[5, 2:58] = snake[5:55, 57] = snake[54, 2:58] = 1  # one object through 9 blocks
    snake[30, 10] = 1  # one pixel: below min_size alone, however the blocks cut
    probabilities = np.eye(2, dtype="float32")[snake]
    labels = blockwise_instance_labels(probabilities, block_size=20, min_size=2)
    assert labels.max() == 1 and (labels > 0).sum() == snake.sum() - 1


def test_min_size_counts_the_whole_cell_not_its_piece_in_a_block():
    square = np.zeros((40, 40), int)
    square[18:22, 18:22] = 1  # 16 px, cut into four 4-px pieces by 20-px blocks
    probabilities = np.eye(2, dtype="float32")[square]
    assert blockwise_instance_labels(probabilities, block_size=20, min_size=10).max() == 1
    assert blockwise_instance_labels(probabilities, block_size=20, min_size=17).max() == 0


def test_labels_go_into_a_zarr_array_block_by_block(tmp_path, truth):
    probabilities = _noisy(truth, 3)
    stored = zarr.create_array(tmp_path / "p.zarr", shape=probabilities.shape,
                               chunks=(64, 64, 3), dtype="float32")
    stored[:] = probabilities
    output = zarr.create_array(tmp_path / "labels.zarr", shape=truth.shape, chunks=(40, 40),
                               dtype="uint32")
    assert blockwise_instance_labels(stored, output) is output  # blocks of its 40 px chunks
    assert _same_objects(output[:].astype(np.int64), instance_labels(probabilities))


def test_bad_arguments_are_named():
    probabilities = np.eye(2, dtype="float32")[np.zeros((8, 8), int)]
    with pytest.raises(ValueError, match="halo must be"):
        blockwise_instance_labels(probabilities, halo=-1)
    with pytest.raises(ValueError, match="output has shape"):
        blockwise_instance_labels(probabilities, np.zeros((4, 4), np.int32))
    with pytest.raises(ValueError, match="probabilities has 4 channels"):
        blockwise_instance_labels(np.zeros((8, 8, 4)))
    lone_pixels = np.eye(2, dtype="float32")[np.indices((40, 40)).sum(0) % 2]  # 800 objects
    with pytest.raises(ValueError, match="cannot hold them"):
        blockwise_instance_labels(lone_pixels, np.zeros((40, 40), np.uint8), min_size=0)
