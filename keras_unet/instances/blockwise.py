"""Cell labels of an image too large to label at once: per block, then one label per cell.

:func:`keras_unet.instances.instance_labels` needs the whole probability map; here it runs on
each block plus a halo of context, and a relabelling pass gives every cell one label across the
image, also the cells that straddle block borders:

1. each block's labels (of the block and its halo) get ids no other block uses, and its core is
   written to the output;
2. along every border, the labels two neighbouring blocks give the same pixels (a band one
   pixel wide on each side; both blocks see it, one as core, one as halo) say which ids are one
   cell. Connected components: any shared pixel joins two ids, which makes the result exactly
   the whole-image labelling for any block and halo. Watershed: two ids join when each holds
   the majority of the other's band pixels, so that two touching cells that one block's view
   sees as one do not merge;
3. the joined ids are numbered 1..N, ``min_size`` is applied to the whole cells, and every block
   is rewritten.

A watershed's result depends on context, so the blocks' labels equal the whole image's where
each cell and the seeds that compete for it lie within the halo of every block that holds part
of it: cells smaller than the halo (default :data:`HALO`) get the whole-image result.

Volumes are cut into boxes and joined across their faces the same way (a band one voxel thick
on each side of every face), so a nucleus cut by block faces keeps one label.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from keras_unet.class_layout import ClassLayout
from keras_unet.errors import InputError
from keras_unet.inference.blocks import block_shape, block_windows, default_block_size
from keras_unet.instances.labels import SPLIT_H, instance_labels
from keras_unet.instances.settings import check_min_size, settings_of

HALO = 64
"""Context around each block for the watershed, in pixels: wider than the cells it must see."""

BAND = 1
"""Pixels on each side of a block border whose labels the two blocks compare."""

DEFAULT_INSTANCE_BLOCK = 1024
"""Block side when neither ``block_size`` nor the output's chunks say otherwise."""

DEFAULT_VOLUME_INSTANCE_BLOCK = 128
"""A volume's block side, likewise."""


def blockwise_instance_labels(probabilities, output=None, *, block_size=None, halo: int = HALO,
                              method: str | None = None, min_size: int | None = None,
                              h: float = SPLIT_H, connectivity: int = 1, model=None,
                              spacing=None):
    """Instance labels of an (H, W, K) probability array-like, block by block, one per cell.

    A volume's ``(D, H, W, K)`` probabilities are labelled in boxes, joined across their faces.

    Runs :func:`keras_unet.instances.instance_labels` (same ``method``, ``h``,
    ``connectivity``) on every block with ``halo`` pixels of context, then joins the labels
    of cells cut by block borders (see the module docstring) and removes cells under
    ``min_size`` pixels, counted over the whole cell. Connected components equal the
    whole-image labelling exactly; watershed labels do for cells smaller than the halo.

    Args:
        probabilities: (H, W, 2) or (H, W, 3) array-like (NumPy, zarr, a plane view).
        output: integer (H, W) array-like to write the labels into (e.g. a uint32 zarr
            array); ``None`` returns a new int32 NumPy array.
        block_size: block side (int or pair); default: the output's chunks, else
            :data:`DEFAULT_INSTANCE_BLOCK`.
        halo: context around each block for the watershed (components need none).
        method, min_size, h, connectivity, model, spacing: as for ``instance_labels``
            (``method`` and ``min_size`` default to what ``model`` carries).

    Returns:
        ``output`` (or the new array): 0 background, 1..N cells.

    Raises:
        ValueError: for probabilities or arguments ``instance_labels`` refuses, a negative
            halo, or more cells than the output's dtype holds.

    Example:
        >>> from keras_unet.instances import instance_labels
        >>> yy, xx = np.mgrid[:40, :40]
        >>> cells = ((yy % 20 - 10)**2 + (xx % 20 - 10)**2 < 40).astype(int)  # 4 discs
        >>> probabilities = np.eye(2)[cells]
        >>> blocks = blockwise_instance_labels(probabilities, block_size=15)
        >>> whole = instance_labels(probabilities)
        >>> int(blocks.max()), bool((np.unique(blocks * 100 + whole).size == 5))
        (4, True)
    """
    if isinstance(halo, bool) or not isinstance(halo, (int, np.integer)) or halo < 0:
        raise InputError(f"halo must be an integer >= 0 (pixels), got {halo!r}.")
    settings = settings_of(model).replaced(method=method, min_size=min_size)
    method, min_size = settings.method, check_min_size(settings.min_size)
    shape = tuple(int(n) for n in probabilities.shape[:-1])
    ndim = len(shape)
    num_classes = int(probabilities.shape[-1])
    if method == "auto":
        method = ClassLayout.of(num_classes).instance_method
    joins_any = method == "components"
    context = BAND if joins_any else max(int(halo), BAND)
    if output is None:
        output = np.zeros(shape, np.int32)
    if tuple(output.shape) != shape:
        raise InputError(f"output has shape {tuple(output.shape)}; the labels need "
                         f"{shape}.")
    default = DEFAULT_INSTANCE_BLOCK if ndim == 2 else DEFAULT_VOLUME_INSTANCE_BLOCK
    blocks = block_shape(block_size if block_size is not None else
                         default_block_size(output, ndim=ndim)
                         if getattr(output, "chunks", None) else default, ndim)
    largest = np.iinfo(np.dtype(output.dtype)).max
    windows = block_windows(shape, blocks)
    offset, sizes, bands = 0, [np.zeros(1, np.int64)], {}
    volume = {} if spacing is None else {"spacing": spacing}
    for window in windows:
        starts, extents = window[:ndim], window[ndim:]
        lows = tuple(max(0, start - context) for start in starts)
        highs = tuple(min(length, start + extent + context)
                      for start, extent, length in zip(starts, extents, shape))
        labels = instance_labels(
            np.asarray(probabilities[tuple(slice(lo, hi) for lo, hi in zip(lows, highs))]),
            method=method, min_size=0, h=h, connectivity=connectivity, model=model,
            **volume).astype(np.int64)
        count = int(labels.max())
        if offset + count > largest:
            raise InputError(f"more than {largest} labels: the output dtype {output.dtype} "
                             "cannot hold them; use a wider one (uint64).")
        labels = np.where(labels > 0, labels + offset, 0)
        core = labels[tuple(slice(start - lo, start - lo + extent)
                            for start, lo, extent in zip(starts, lows, extents))]
        output[tuple(slice(start, start + extent) for start, extent in zip(starts, extents))] = core
        local = np.where(core > 0, core - offset, 0).ravel()
        sizes.append(np.bincount(local, minlength=count + 1)[1:])
        bands[starts] = _border_bands(labels, lows, window, shape)
        offset += count
    pairs = _matching_pairs(windows, bands, blocks, joins_any)
    mapping = _final_ids(offset, np.concatenate(sizes), pairs, min_size)
    for window in windows:
        where = tuple(slice(start, start + extent)
                      for start, extent in zip(window[:ndim], window[ndim:]))
        output[where] = mapping[np.asarray(output[where], np.int64)]
    return output


def _border_bands(labels, origin, window, shape) -> dict:
    """A block's labels on the bands across its far faces (``("after", axis)``: the right and
    bottom borders of an image) and its near ones (``("before", axis)``), each as ``(corner,
    labels)``; the bands reach one band into the neighbouring blocks along the other axes."""
    ndim = len(shape)
    starts, extents = window[:ndim], window[ndim:]
    spans = [(max(0, start - BAND), min(length, start + extent + BAND))
             for start, extent, length in zip(starts, extents, shape)]

    def crop(axis, low, high):
        box = list(spans)
        box[axis] = (low, high)
        corner = tuple(lo for lo, _ in box)
        return corner, labels[tuple(slice(lo - o, hi - o) for (lo, hi), o in zip(box, origin))]

    bands = {}
    for axis in reversed(range(ndim)):  # the last axis first: an image's right, then bottom
        start, extent, length = starts[axis], extents[axis], shape[axis]
        if start + extent < length:
            bands[("after", axis)] = crop(axis, start + extent - BAND, start + extent + BAND)
        if start > 0:
            bands[("before", axis)] = crop(axis, start - BAND, start + BAND)
    return bands


def _matching_pairs(windows, bands, blocks, joins_any: bool) -> np.ndarray:
    """(n, 2) ids to join, from the two views of every border band."""
    found = []
    ndim = len(blocks)
    for window in windows:
        starts = window[:ndim]
        mine = bands[starts]
        for axis in reversed(range(ndim)):
            if ("after", axis) in mine:
                key = tuple(start + (blocks[a] if a == axis else 0)
                            for a, start in enumerate(starts))
                first, second = mine[("after", axis)][1], bands[key][("before", axis)][1]
                found.append(_pairs(first.ravel(), second.ravel(), joins_any))
    return np.concatenate(found) if found else np.zeros((0, 2), np.int64)


def _pairs(first: np.ndarray, second: np.ndarray, joins_any: bool) -> np.ndarray:
    both = (first > 0) & (second > 0)
    pairs, counts = np.unique(np.stack([first[both], second[both]], 1), axis=0,
                              return_counts=True)
    if joins_any or not len(pairs):
        return pairs
    ids_first, total_first = np.unique(first[first > 0], return_counts=True)
    ids_second, total_second = np.unique(second[second > 0], return_counts=True)
    of_first = total_first[np.searchsorted(ids_first, pairs[:, 0])]
    of_second = total_second[np.searchsorted(ids_second, pairs[:, 1])]
    return pairs[(2 * counts > of_first) & (2 * counts > of_second)]


def _final_ids(count: int, sizes: np.ndarray, pairs: np.ndarray, min_size: int) -> np.ndarray:
    """Map from block ids (0..count) to cells 1..N (0: background or too small)."""
    nodes = count + 1
    graph = scipy.sparse.coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])),
                                    shape=(nodes, nodes))
    _, component = scipy.sparse.csgraph.connected_components(graph, directed=False)
    total = np.bincount(component, weights=sizes, minlength=component.max() + 1)
    kept = (total >= max(min_size, 1))
    first_id = np.full(len(total), nodes, np.int64)
    np.minimum.at(first_id, component, np.arange(nodes))
    order = np.argsort(np.where(kept, first_id, nodes), kind="stable")
    number = np.zeros(len(total), np.int64)
    number[order[:int(kept.sum())]] = np.arange(1, int(kept.sum()) + 1)
    return number[component]
