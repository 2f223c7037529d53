"""The paper's pixel weights w(x) and the class labels they are computed for.

Ronneberger et al. (2015), eq. 2::

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))

``w_c`` balances the class frequencies; ``d1`` and ``d2`` are the distances of a background
pixel to the nearest and the second-nearest cell, so the second term is large in the thin gaps
between touching cells, which the network must learn to keep open. The border term is for
instance labels only; semantic class masks get ``w_c`` alone (:func:`class_weight_map`).

Unlabelled pixels (:data:`keras_unet.class_layout.UNLABELLED`, partial annotations) get weight
0, are left out of the class frequencies, and are neither cell nor background: they receive no
border term and no distance is measured to them, only to the labelled cells.

The obvious implementation runs one distance transform of the whole image per cell and sorts
them. Here the border term is only evaluated where it can matter: it is below ``eps`` once
``d1 + d2 > D = sigma * sqrt(2 ln(w0 / eps))`` (:func:`border_cutoff`), with ``eps`` under half
a float32 unit in the last place of the background weight, so dropping it changes the float32
result by at most one rounding step (31.3 px for the paper's w0 = 10, sigma = 5).
:func:`nearest_two_distances` then gets d1 and d2 exactly where ``d1 + d2 <= D``, at a fraction
of the cost: pixels in the thin gaps between touching cells find both cells in their
neighbourhood, and only the other pixels need per-cell distance transforms, each limited to the
cell's bounding box grown by ``floor(D) - 1``.

Volumes get the same weights in 3D: labels ``(D, H, W)``, 6-neighbour rings, distances to the
cells in 3D. An anisotropic volume's distances are physical: with ``spacing`` ``(z, y, x)`` an
offset of one plane counts ``spacing[0] / min(spacing)`` pixels of the finest axis, so ``sigma``
and the cut-off keep their meaning in pixels of the finest axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.ndimage

from keras_unet.class_layout import NUM_CLASSES, UNLABELLED
from keras_unet.errors import InputError


def _check_instance_labels(instance_labels) -> np.ndarray:
    labels = np.asarray(instance_labels)
    if labels.ndim not in (2, 3):
        raise InputError(f"instance_labels must be a 2D (H, W) label image or a 3D (D, H, W) "
                         f"volume, got shape {labels.shape}.")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise InputError(f"instance_labels must hold integer ids, got dtype {labels.dtype}.")
    if labels.size and labels.min() < UNLABELLED:
        raise InputError(f"instance_labels has negative ids; expected 0 (background) and up, "
                         f"or {UNLABELLED} for unlabelled pixels.")
    return labels


def _labelled_cells(labels: np.ndarray) -> np.ndarray:
    """Instance labels with unlabelled pixels as background, for distances to the known cells."""
    return np.where(labels == UNLABELLED, 0, labels) if labels.dtype != bool else labels


def class_labels(instance_labels, num_classes: int = 2) -> np.ndarray:
    """Per-pixel classes from instance labels: background 0, cell 1, optionally border 2.

    With ``num_classes=3`` cell pixels that have a 4-neighbour (a voxel's 6-neighbour) with
    another label (another cell or the background) form class 2, "border", as the 3-class
    U-Nets of later work
    (e.g. Caicedo et al. 2019, StarDist and Cellpose baselines) use to keep touching cells
    apart. The image edge is not a border, nor is an unlabelled neighbour (unlabelled pixels
    stay :data:`~keras_unet.class_layout.UNLABELLED`).

    Args:
        instance_labels: ``(H, W)`` (or ``(D, H, W)``) integer labels, 0 background, -1
            unlabelled.
        num_classes: 2 or 3.

    Returns:
        int32 class indices of the labels' shape.

    Example:
        >>> labels = np.array([[1, 1, 1, 0, 2, 2], [1, 1, 1, 0, 2, 2]])
        >>> class_labels(labels, 3).tolist()
        [[1, 1, 2, 0, 2, 1], [1, 1, 2, 0, 2, 1]]
    """
    labels = _check_instance_labels(instance_labels)
    if num_classes not in NUM_CLASSES or isinstance(num_classes, bool):
        raise InputError(f"num_classes must be 2 (background, cell) or 3 (background, cell, "
                         f"border), got {num_classes!r}.")
    classes = (labels > 0).astype(np.int32)
    classes[labels == UNLABELLED] = UNLABELLED
    if num_classes == 3:
        edge = np.zeros(labels.shape, bool)
        labelled = labels != UNLABELLED
        for axis in range(labels.ndim):
            head = (slice(None),) * axis + (slice(None, -1),)  # each pixel and the next one
            tail = (slice(None),) * axis + (slice(1, None),)
            differs = (np.diff(labels, axis=axis) != 0) & labelled[head] & labelled[tail]
            edge[head] |= differs
            edge[tail] |= differs
        classes[edge & (labels > 0)] = 2
    return classes


def class_weight_map(classes: np.ndarray, class_weights="balanced",
                     num_classes: int = 2) -> np.ndarray:
    """``w_c(x)``: a weight per class, spread over the pixels of ``classes``, as float64.

    ``"balanced"`` gives class k the weight ``N / (K * N_k)`` (N labelled pixels, N_k of class
    k, K the classes present), so every present class carries the same total weight and the
    mean weight is 1; ``None`` gives 1 everywhere; a sequence gives one factor per class.
    Unlabelled pixels (:data:`~keras_unet.class_layout.UNLABELLED`) get 0 and are not counted.
    This alone is the weight map of semantic class masks (the border term is for instances).

    Example:
        >>> class_weight_map(np.array([[0, 0, 0, 1]])).tolist()
        [[0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0]]
        >>> class_weight_map(np.array([[0, -1, 2, 2]]), num_classes=3).tolist()
        [[1.5, 0.0, 0.75, 0.75]]
    """
    classes = np.asarray(classes)
    labelled = classes != UNLABELLED
    if class_weights is None:
        factors = np.ones(num_classes)
    elif isinstance(class_weights, str):
        if class_weights != "balanced":
            raise InputError(f"class_weights must be 'balanced', None or a sequence of "
                             f"{num_classes} factors, got {class_weights!r}.")
        counts = np.bincount(classes[labelled], minlength=num_classes).astype(np.float64)
        present = counts > 0
        factors = np.where(present, labelled.sum() / (max(present.sum(), 1)
                                                      * np.maximum(counts, 1)), 0.0)
    else:
        factors = np.asarray(class_weights, dtype=np.float64)
        if factors.shape != (num_classes,) or not np.isfinite(factors).all() or (factors < 0).any():
            raise InputError(f"class_weights must be {num_classes} finite non-negative factors "
                             f"(one per class), got {class_weights!r}.")
    return np.where(labelled, factors[np.where(labelled, classes, 0)], 0.0)


def border_cutoff(w0: float, sigma: float, background_weight: float = 1.0) -> float:
    """The distance sum ``D`` beyond which the border term cannot change a float32 weight.

    ``D = sigma * sqrt(2 ln(w0 / eps))`` with ``eps = background_weight * 2**-25``, less than
    half a float32 unit in the last place of the background weight (``2**-150``, which float32
    rounds to 0, if that weight is 0). For ``d1 + d2 > D`` the term ``w0 exp(-(d1 + d2)^2 /
    (2 sigma^2))`` is below ``eps``, so dropping it changes the float32 weight by at most one
    rounding step. ``D`` is 0 when ``w0 <= eps`` (the term never counts).

    Example:
        >>> round(border_cutoff(10.0, 5.0), 2)  # the paper's w0 and sigma: 6.3 sigma
        31.33
    """
    eps = max(background_weight * 2.0**-25, 2.0**-150)  # 2**-150 rounds to float32 0
    if w0 <= eps:
        return 0.0
    return sigma * math.sqrt(2.0 * math.log(w0 / eps))


GAP_RADIUS = 3
"""Pixels within this distance of two cells (the gaps between touching cells) are resolved by
looking at their neighbourhood alone, without any distance transform."""


NEIGHBOURHOOD_CHUNK = 2**16
"""Background pixels looked at together in the neighbourhood step (bounds its memory)."""


def _unit_spacing(spacing, ndim: int) -> np.ndarray | None:
    """The spacing in pixels of the finest axis (``None``: every axis 1, exact integers)."""
    if spacing is None:
        return None
    from keras_unet.geometry import check_spacing

    spacing = np.asarray(check_spacing(spacing), np.float64)
    if spacing.size != ndim:
        raise InputError(f"spacing must have one value per axis of the labels ({ndim}), got "
                         f"{tuple(spacing)}.")
    spacing = spacing / spacing.min()
    return None if (spacing == 1).all() else spacing


def _neighbourhood_two_nearest(labels: np.ndarray, radius: int, spacing: np.ndarray | None = None):
    """Squared distances to the two nearest cells, looked up within ``radius`` of each
    background pixel; the second is only found (``found``) if it is within ``radius``.

    Returns the coordinates of the pixels where both were found (one array per axis) and the
    two squared distances there (integers, or floats with a ``spacing``)."""
    ndim = labels.ndim
    scale = np.ones(ndim) if spacing is None else spacing
    reach = [int(radius // step) for step in scale]
    grids = np.meshgrid(*(np.arange(-r, r + 1) for r in reach), indexing="ij")
    offsets_per_axis = [grid.ravel() for grid in grids]
    if spacing is None:
        squared = sum(o * o for o in offsets_per_axis)
        limit = radius * radius
    else:
        squared = sum(np.square(o * step) for o, step in zip(offsets_per_axis, scale))
        limit = float(radius * radius)
    order = np.argsort(squared, kind="stable")[1:]  # nearest offsets first, without the origin
    order = order[squared[order] <= limit]
    padded = np.pad(labels, [(r, r) for r in reach])
    strides = np.cumprod((padded.shape[1:] + (1,))[::-1])[::-1]
    offsets = sum(o[order] * stride for o, stride in zip(offsets_per_axis, strides))
    where = np.nonzero(labels == 0)
    flat = sum((w + r) * stride for w, r, stride in zip(where, reach, strides))
    found_at, first_squared, second_squared = [], [], []
    for start in range(0, flat.size, NEIGHBOURHOOD_CHUNK):
        chunk = flat[start:start + NEIGHBOURHOOD_CHUNK]
        near = padded.ravel()[chunk[:, None] + offsets]
        is_cell = near != 0
        pixel = np.arange(chunk.size)
        first = np.argmax(is_cell, axis=1)  # the first offset on a cell is the nearest cell
        other = is_cell & (near != near[pixel, first][:, None])
        second = np.argmax(other, axis=1)
        found = other[pixel, second]
        found_at.append(start + np.flatnonzero(found))
        first_squared.append(squared[order][first[found]])
        second_squared.append(squared[order][second[found]])
    found_at = np.concatenate(found_at) if found_at else np.zeros(0, np.int64)
    dtype = squared.dtype
    return (tuple(w[found_at] for w in where),
            np.concatenate(first_squared) if first_squared else np.zeros(0, dtype),
            np.concatenate(second_squared) if second_squared else np.zeros(0, dtype))


def nearest_two_distances(instance_labels, max_sum: float, spacing=None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Distances ``d1 <= d2`` of background pixels to their nearest and second-nearest cell.

    Exact (bit for bit the values of one whole-image ``distance_transform_edt`` per cell) at
    every pixel outside the cells where ``d1 + d2 <= max_sum``; elsewhere possibly larger than
    the truth, never smaller. Two steps, both exact:

    1. A background pixel with two cells within :data:`GAP_RADIUS` px, as in the gaps between
       touching cells, takes both distances from its neighbourhood: the offsets are visited
       from the nearest, so the first cell met is the nearest and the first other cell the
       second-nearest.
    2. The other background pixels need distance transforms. A pixel with ``d1 + d2 <= max_sum``
       has ``d1 >= 1``, so both its cells lie within ``max_sum - 1`` and, distances of pixels
       being roots of integers, within a Chebyshev distance of ``m = floor(max_sum) - 1``. So a
       cell's feature transform is computed only in its bounding box grown by ``m``, where it is
       exact because the whole cell is inside, and only if that window holds a pixel of this
       step; a running two-minimum in integers keeps the two smallest squared distances.

    Volumes ``(D, H, W)`` alike. With ``spacing`` (per axis; see the module) distances are in
    pixels of the finest axis, the margin of step 2 ``floor((max_sum - 1) / spacing)`` per axis
    and the sums in floating point.

    Example:
        >>> d1, d2 = nearest_two_distances(np.array([[1, 0, 0, 0, 0, 0, 0, 2]]), max_sum=10)
        >>> d1[0, 1:-1].tolist(), d2[0, 1:-1].tolist()  # d2 <= 3 only in the middle: step 1
        ([1.0, 2.0, 3.0, 3.0, 2.0, 1.0], [6.0, 5.0, 4.0, 4.0, 5.0, 6.0])
    """
    labels = _labelled_cells(_check_instance_labels(instance_labels))
    spacing = _unit_spacing(spacing, labels.ndim)
    if labels.size and labels.max() > labels.size:  # sparse ids: renumber for find_objects
        labels = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
    if spacing is None:
        far = np.iinfo(np.int32).max
        nearest = np.full(labels.shape, far, np.int32)
        second = np.full(labels.shape, far, np.int32)
        margins = [max(math.floor(max_sum) - 1, 0)] * labels.ndim
    else:
        nearest = np.full(labels.shape, np.inf)
        second = np.full(labels.shape, np.inf)
        margins = [max(math.floor((max_sum - 1) / step), 0) for step in spacing]
    gap_at, gap_nearest, gap_second = _neighbourhood_two_nearest(labels, GAP_RADIUS, spacing)
    rest = labels == 0
    rest[gap_at] = False
    for index, box in enumerate(scipy.ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        window = tuple(slice(max(b.start - m, 0), min(b.stop + m, size))
                       for b, m, size in zip(box, margins, labels.shape))
        if not rest[window].any():
            continue
        indices = scipy.ndimage.distance_transform_edt(
            labels[window] != index, return_distances=False, return_indices=True,
            sampling=spacing)
        if spacing is None:
            squared = None
            for axis, nearest_index in enumerate(indices):
                shape = [1] * labels.ndim
                shape[axis] = -1
                nearest_index -= np.arange(nearest_index.shape[axis],
                                           dtype=nearest_index.dtype).reshape(shape)
                term = np.multiply(nearest_index, nearest_index, out=nearest_index)
                squared = term if squared is None else np.add(squared, term, out=squared)
        else:
            squared = None
            for axis, nearest_index in enumerate(indices):
                shape = [1] * labels.ndim
                shape[axis] = -1
                step = (nearest_index - np.arange(nearest_index.shape[axis]).reshape(shape)
                        ) * spacing[axis]
                squared = step * step if squared is None else squared + step * step
        best, runner_up = nearest[window], second[window]
        np.minimum(runner_up, np.maximum(best, squared), out=runner_up)
        np.minimum(best, squared, out=best)
    nearest[gap_at] = gap_nearest  # after step 2, which may have counted these too
    second[gap_at] = gap_second
    return np.sqrt(nearest), np.sqrt(second)


def weight_map(instance_labels, w0: float = 10.0, sigma: float = 5.0,
               class_weights: str | Sequence[float] | None = "balanced", *,
               num_classes: int = 2, spacing: Sequence[float] | None = None) -> np.ndarray:
    """The paper's weight map ``w(x) = w_c(x) + w0 exp(-(d1 + d2)^2 / (2 sigma^2))``.

    ``w_c`` comes from :func:`class_weight_map` over :func:`class_labels` (``"balanced"``:
    ``N / (K N_k)``, mean 1; ``None``: 1; or one factor per class). The border term is added
    on background pixels only, and only when the image has at least two cells; it is exact up
    to float32 rounding (see :func:`border_cutoff` for where it is cut off). Unlabelled pixels
    (-1) weigh 0; distances are measured to the labelled cells only.

    Args:
        instance_labels: ``(H, W)`` integer labels, 0 background, one id per cell, -1
            unlabelled; or a volume's ``(D, H, W)``.
        w0: border weight (the paper: 10).
        sigma: border width in pixels (the paper: about 5); of the finest axis with a
            ``spacing``.
        class_weights: ``"balanced"``, ``None`` or a sequence of ``num_classes`` factors.
        num_classes: 2 (background, cell) or 3 (plus border), as in :func:`class_labels`.
        spacing: the pixel (voxel) size per axis, for physical distances in anisotropic
            volumes; ``None``: 1 on every axis.

    Returns:
        float32 weights of the labels' shape.

    Example:
        >>> labels = np.array([[1, 1, 0, 2, 2]])
        >>> weight_map(labels, class_weights=None).round(3).tolist()  # gap: d1 = d2 = 1
        [[1.0, 1.0, 10.231, 1.0, 1.0]]
        >>> volume = np.stack([labels * 0, labels, labels * 0])  # 3 planes, 2 cells in the middle
        >>> weight_map(volume, class_weights=None, spacing=(4, 1, 1))[1].round(3).tolist()
        [[1.0, 1.0, 10.231, 1.0, 1.0]]
    """
    labels = _check_instance_labels(instance_labels)
    for name, value, positive in (("w0", w0, False), ("sigma", sigma, True)):
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise InputError(f"{name} must be a finite number {'>' if positive else '>='} 0, "
                             f"got {value!r}.")
    classes = class_labels(labels, num_classes)
    weights = class_weight_map(classes, class_weights, num_classes)
    background = classes == 0
    cells = labels[classes > 0]
    cutoff = border_cutoff(w0, sigma, float(weights[background].min())) if background.any() else 0
    if cutoff > 0 and cells.size and (cells != cells[0]).any():  # at least two cells
        nearest, second = nearest_two_distances(labels, max_sum=cutoff, spacing=spacing)
        total = nearest + second
        near = background & (total <= cutoff)
        weights[near] += w0 * np.exp(-np.square(total[near]) / (2.0 * sigma**2))
    return weights.astype(np.float32)
