"""Cell instances from class probabilities: one label per cell, for counting and SEG.

A U-Net gives per-pixel class probabilities; counts, per-cell measurements and the instance
scores of the field (SEG of the Cell Tracking Challenge, the ISBI 2012 Rand and warping errors)
need one label per cell. :func:`instance_labels` makes them for the class layouts of
:func:`keras_unet.weight_maps.class_labels`:

* 2 classes (background, cell): connected components of the cell class, optionally split where
  touching cells were predicted as one blob, by a watershed of the distance transform;
* 3 classes (background, cell, border): the cell interiors, which the border ring between and
  around cells keeps apart, are the seeds of a watershed that grows each over its ring, so
  every object gets its full extent back (taking only class 1 would lose the ring);
* cells that tile the image, their background class the membrane between them (serial-section
  EM): confident cell cores seed a watershed of the cell probability over the whole image, so
  a gap in a predicted membrane does not merge two cells, and every membrane pixel goes to the
  cell it most likely belongs to.

Volumes ``(D, H, W, K)`` take the same steps in 3D (6-connected components, the seeded
watershed over the 3D ring, a distance watershed whose distances are physical with the voxel
``spacing``), so a nucleus is one label through all its planes.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage
import skimage.measure
import skimage.morphology
import skimage.segmentation

from keras_unet.class_layout import CLASS_NAMES, NUM_CLASSES, ClassLayout
from keras_unet.errors import InputError
from keras_unet.instances.settings import check_method, check_min_size, settings_of

CELL = CLASS_NAMES[3].index("cell")
"""Class index of the cells (their interiors in the 3-class layout) in both layouts."""

SPLIT_H = 2.0
"""Default ``h`` of the 2-class watershed, in pixels of distance to the background. Of h = 1..5,
on six 256 px synthetic images whose cells were grown by 1 px until they touch, 2 gave the best
SEG (0.79; components: 0.03), and on the separate cells it added 1.4 % objects (SEG 0.997)."""

SEED_PROBABILITY = 0.8
"""``"membranes"``: a cell core is where the smoothed cell probability exceeds this. Chosen on
the ISBI 2012 slices (benchmarks/README.md, "ISBI 2012"): lower cores join through membrane
gaps, higher ones miss faint cells."""

SEED_MIN_SIZE = 20
"""``"membranes"``: cores under this many pixels seed nothing (specks inside a membrane)."""

SEED_SMOOTHING = 1.0
"""``"membranes"``: sigma (px) of the Gaussian smoothing of the cell probability, so one cell's
noisy map gives one core."""

TIE_BREAK = 1e-3
"""Compactness of the 3-class watershed: where the interior probabilities tie (a hard ring),
a ring pixel goes to the nearest seed pixel instead of the first seed to reach it."""


def instance_labels(probabilities, *, method: str | None = None, min_size: int | None = None,
                    h: float = SPLIT_H, connectivity: int = 1, model=None,
                    spacing=None) -> np.ndarray:
    """Instance labels from class probabilities ``(H, W, K)``, K = 2 or 3 as in ``weight_maps``.

    A volume's probabilities ``(D, H, W, K)`` give ``(D, H, W)`` labels: connectivity 1 is
    then 6-neighbours (2: 18, 3: 26), ``min_size`` counts voxels, and with a ``spacing`` (or a
    model that records one) the distances of the watershed and the smoothing of
    ``"membranes"`` are physical, in pixels of the finest axis.

    The foreground is every pixel whose argmax is not background (cells and, for K = 3,
    borders). ``method``:

    * ``"components"``: connected components of the foreground. For K = 3 cells whose rings
      touch stay merged; this is the baseline.
    * ``"watershed"``: K = 2: each component is split at the saddles of its Euclidean distance
      transform: every h-maximum (a dome that rises at least ``h`` px above the saddle to a
      higher one) seeds an object, grown by ``skimage.segmentation.watershed`` over
      ``-distance``. K = 3: the 8-connected components of the cell class (interiors of
      different cells can never be 8-neighbours in the layout) seed a watershed over the
      foreground that floods in order of falling cell probability, ties going to the nearest
      seed. Foreground pieces that no seed reaches (a cell at most 2 px wide is all ring) become
      objects of their own, subject to ``min_size`` like all others.
    * ``"membranes"``: for cells that tile the image with a membrane between them, the
      background class being that membrane (serial-section EM such as ISBI 2012). The cell
      probability (class 1), smoothed by :data:`SEED_SMOOTHING`, has cores above
      :data:`SEED_PROBABILITY` (4-connected, at least :data:`SEED_MIN_SIZE` px); they seed a
      watershed of it over the whole image. Every pixel then belongs to a cell, membranes
      included, and two cells stay apart wherever their cores do, even where the membrane
      between them has a gap at argmax. Not for cells on a background: it gives the
      background to the cells too.
    * ``"auto"``: ``"watershed"`` for K = 3 (the ring is there to be used), ``"components"``
      for K = 2 (distance splitting also cuts elongated or waisted cells, so it is opt-in;
      whether the background is space or membrane cannot be told from the map):
      :attr:`keras_unet.class_layout.ClassLayout.instance_method`.

    Objects under ``min_size`` pixels are then removed and the rest numbered 1..N. ``method``
    and ``min_size`` default to what ``model`` carries (the settings ``unet train`` chose on its
    validation images, :mod:`keras_unet.instances.settings`), else ``"auto"`` and
    :data:`~keras_unet.instances.settings.MIN_SIZE`.

    Args:
        probabilities: ``(H, W, K)`` class probabilities (softmax outputs; logits work too
            for all methods but ``"membranes"``, as only their argmax and the order of the
            cell channel count).
        method: ``"auto"``, ``"components"``, ``"watershed"`` or ``"membranes"``.
        min_size: smallest object kept, in pixels (0 keeps all).
        model: a :class:`keras_unet.model.UNet` or a network of
            :func:`keras_unet.inference.load_network` whose recorded settings to use.
        h: K = 2 watershed only: how far (px) a distance maximum must rise above the saddle to
            its neighbour to seed its own object; larger splits less.
        connectivity: 1 (4-neighbours, so cells touching at a corner stay apart) or 2
            (8-neighbours), for the foreground components and the watershed flooding; volumes
            also 3.
        spacing: the voxel size per axis (default: the model's, if it records one; else 1).

    Returns:
        int32 ``(H, W)`` (``(D, H, W)``) labels: 0 background, 1..N objects.

    Raises:
        ValueError: for probabilities that are not ``(H, W, 2)`` or ``(H, W, 3)`` finite real
            numbers, or a bad argument, naming it and what it must be.

    Example:
        >>> from keras_unet.weight_maps import class_labels
        >>> truth = np.zeros((5, 8), "int32"); truth[:, :3] = 1; truth[:, 3:7] = 2
        >>> perfect = np.eye(3)[class_labels(truth, 3)]  # rings between and around the cells
        >>> instance_labels(perfect, min_size=0).tolist()
        [[1, 1, 1, 2, 2, 2, 2, 0], [1, 1, 1, 2, 2, 2, 2, 0], [1, 1, 1, 2, 2, 2, 2, 0],
         [1, 1, 1, 2, 2, 2, 2, 0], [1, 1, 1, 2, 2, 2, 2, 0]]
        >>> yy, xx = np.mgrid[:20, :34]  # two overlapping discs, one blob in a 2-class map
        >>> blob = ((yy - 10)**2 + (xx - 10)**2 < 64) | ((yy - 10)**2 + (xx - 23)**2 < 64)
        >>> two_class = np.eye(2)[blob.astype(int)]
        >>> [int(instance_labels(two_class, method=m).max()) for m in ("components", "watershed")]
        [1, 2]
        >>> cell = np.full((30, 40), 0.95); cell[:, 19:21] = 0.1; cell[13:17, 19:21] = 0.6
        >>> em = np.stack([1 - cell, cell], -1)  # two cells, a gap in the membrane between
        >>> [int(instance_labels(em, method=m).max()) for m in ("components", "membranes")]
        [1, 2]
        >>> int((instance_labels(em, method="membranes") == 0).sum())  # membranes assigned too
        0
    """
    probabilities = _check_probabilities(probabilities)
    settings = settings_of(model).replaced(method=method, min_size=min_size)
    method, min_size = check_method(settings.method), check_min_size(settings.min_size)
    if (isinstance(h, bool) or not isinstance(h, (int, float, np.integer, np.floating))
            or not math.isfinite(h) or h <= 0):
        raise InputError(f"h must be a finite number > 0 (pixels of distance), got {h!r}.")
    ndim = probabilities.ndim - 1
    if isinstance(connectivity, bool) or connectivity not in range(1, ndim + 1):
        neighbours = "(4-neighbours) or 2 (8-neighbours)" if ndim == 2 else \
            "(6-neighbours), 2 (18) or 3 (26)"
        raise InputError(f"connectivity must be 1 {neighbours}, got {connectivity!r}.")
    scale = _unit_spacing(spacing if spacing is not None else _model_spacing(model), ndim)
    num_classes = probabilities.shape[-1]
    if method == "auto":
        method = ClassLayout.of(num_classes).instance_method
    classes = np.argmax(probabilities, axis=-1)
    foreground = classes != 0
    if method == "components":
        labels = skimage.measure.label(foreground, connectivity=connectivity)
    elif method == "membranes":
        labels = _fill_from_cores(probabilities[..., CELL], connectivity, scale)
    elif num_classes == 3:
        labels = _grow_interiors(probabilities[..., CELL], classes == CELL, foreground,
                                 connectivity)
    else:
        labels = _split_by_distance(foreground, float(h), connectivity, scale)
    return _remove_small(labels, int(min_size))


def _model_spacing(model):
    """The spacing a model records (a UNet's arguments, a loaded network's geometry), or None."""
    arguments = getattr(model, "arguments", None)
    if isinstance(arguments, dict) and arguments.get("spacing") is not None:
        return arguments["spacing"]
    geometry = getattr(model, "geometry", None)
    return getattr(geometry, "spacing", None)


def _unit_spacing(spacing, ndim: int):
    """The spacing in pixels of the finest axis, or None (every axis 1)."""
    if spacing is None:
        return None
    from keras_unet.geometry import check_spacing

    values = np.asarray(check_spacing(spacing))
    if values.size != ndim:
        raise InputError(f"spacing must have one value per axis ({ndim}), got "
                         f"{tuple(values)}.")
    values = values / values.min()
    return None if (values == 1).all() else tuple(values)


def _check_probabilities(probabilities) -> np.ndarray:
    probabilities = np.asarray(probabilities)
    if probabilities.ndim not in (3, 4) or 0 in probabilities.shape[:-1]:
        raise InputError(f"probabilities must be a (height, width, classes) array (a volume's "
                         f"(depth, height, width, classes)), got shape {probabilities.shape}.")
    channels = probabilities.shape[-1]
    if channels == 1:
        raise InputError("probabilities has 1 channel: 1-channel sigmoid outputs are not "
                         "supported; pass (H, W, 2) probabilities [1 - p, p].")
    if channels not in NUM_CLASSES:
        layouts = " or ".join(f"{k} ({', '.join(CLASS_NAMES[k])})" for k in NUM_CLASSES)
        raise InputError(f"probabilities has {channels} channels; expected {layouts}.")
    if not (np.issubdtype(probabilities.dtype, np.floating)
            or np.issubdtype(probabilities.dtype, np.integer)):
        raise InputError(f"probabilities must be real numbers, got dtype {probabilities.dtype}.")
    if not np.isfinite(probabilities).all():
        raise InputError("probabilities contain NaN or infinite values.")
    return probabilities


def _split_by_distance(foreground: np.ndarray, h: float, connectivity: int,
                       spacing=None) -> np.ndarray:
    """Watershed of ``-distance`` seeded by the h-maxima of the distance transform.

    The markers are the cores of the h-domes, ``distance > R(distance - h)`` with ``R`` the
    reconstruction by dilation: one connected core per dome, so a flat or rippled ridge
    (equal maxima a few pixels apart) seeds one object, not one per maximum. Every component
    has a core around its highest pixel, so all of the foreground is reached.
    """
    distance = scipy.ndimage.distance_transform_edt(foreground, sampling=spacing)
    domes = distance - skimage.morphology.reconstruction(distance - h, distance)
    markers = skimage.measure.label((domes > 0) & foreground, connectivity=connectivity)
    return skimage.segmentation.watershed(-distance, markers, mask=foreground,
                                          connectivity=connectivity)


def _fill_from_cores(cell_probability: np.ndarray, connectivity: int,
                     spacing=None) -> np.ndarray:
    """Watershed of the smoothed cell probability over the image, from its confident cores."""
    sigma = SEED_SMOOTHING if spacing is None else tuple(SEED_SMOOTHING / s for s in spacing)
    smooth = scipy.ndimage.gaussian_filter(cell_probability.astype(np.float64), sigma)
    cores = skimage.measure.label(smooth > SEED_PROBABILITY, connectivity=1)
    sizes = np.bincount(cores.ravel())
    sizes[0] = 0
    cores = np.where(sizes[cores] >= SEED_MIN_SIZE, cores, 0)
    return skimage.segmentation.watershed(-smooth, cores, connectivity=connectivity)


def _grow_interiors(cell_probability: np.ndarray, interior: np.ndarray, foreground: np.ndarray,
                    connectivity: int) -> np.ndarray:
    """Seeded watershed of the 3-class layout; unseeded foreground pieces become objects."""
    seeds = skimage.measure.label(interior, connectivity=2)
    labels = skimage.segmentation.watershed(-cell_probability, seeds, mask=foreground,
                                            connectivity=connectivity, compactness=TIE_BREAK)
    rest = foreground & (labels == 0)
    pieces = skimage.measure.label(rest, connectivity=connectivity)
    return np.where(rest, pieces + labels.max(), labels)


def _remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    small = np.bincount(labels.ravel()) < min_size  # the background stays 0 either way
    labels = np.where(small[labels], 0, labels)
    return skimage.segmentation.relabel_sequential(labels)[0].astype(np.int32)
