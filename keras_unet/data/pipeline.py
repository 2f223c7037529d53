"""The tf.data pipeline that feeds ``model.fit``: random tiles with mirrored context, the paper's
augmentation, and weight maps computed once per image.

Preparation (once, in :func:`make_dataset`): every image is normalised over the whole image with
:func:`keras_unet.normalization.normalize_image` (inference normalises whole images the same
way), its class labels and weight map are computed (instances:
:func:`keras_unet.weight_maps.class_labels` and the paper's
:func:`keras_unet.weight_maps.weight_map`; semantic class masks: the labels as they are and the
class-balanced :func:`keras_unet.weight_maps.class_weight_map`), and all of it is kept in flat
pixel buffers. Unlabelled pixels keep the label
:data:`keras_unet.class_layout.UNLABELLED` and weight 0; tiles whose output window holds no
labelled pixel are never drawn.

Per batch (in a ``map`` over as many batches at once as there are cores, XLA-compiled; tf.data's
autotuner is off, see :func:`fixed_parallelism`): each tile is read straight out of its whole
image with :func:`keras_unet.augment.sample_mirrored`, so cropping, mirror padding, the
flip/rotation and the elastic deformation are one gather per pixel and the context around a tile
is the real image wherever the image has it (mirrored only beyond its edges). The image is read
at ``tile_size``, labels and weights only at the ``output_size`` window the network predicts.

Volumes (samples whose labels are ``(D, H, W)``) take the same path with one more axis: tiles
``(d, s, s)`` (a cube, or fewer planes for an anisotropic network), weight maps in 3D with the
samples' spacing, the 16 flips/rotations that keep z, a 3x3x3 elastic deformation in physical
units, trilinear reads (:func:`keras_unet.augment.sample_mirrored` with planes). Partially
annotated volumes, a few labelled slices and the rest unlabelled as the 3D U-Net was trained,
draw their windows around labelled voxels.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from keras_unet import geometry
from keras_unet.augment import (
    dihedral_grid,
    displacement_field,
    random_displacement,
    random_gray_values,
    sample_mirrored,
    volume_grid,
)
from keras_unet.class_layout import LABEL_MODES, NUM_CLASSES, UNLABELLED
from keras_unet.data.samples import Sample
from keras_unet.errors import InputError
from keras_unet.normalization import normalize_image
from keras_unet.scalars import python_int
from keras_unet.weight_maps import class_labels, class_weight_map, weight_map

MAX_PIXELS = 2**31 - 1
"""Pixels all images together may have (int32 indices into the flat buffers)."""

PREFETCH_BATCHES = 2
"""Batches made ahead of the training step."""


def fixed_parallelism() -> tf.data.Options:
    """tf.data options with autotuning off; the pipeline's parallelism is set by hand instead.

    On small CPU machines tf.data's autotuner competes with the training step for the cores:
    on 2 cores, ``model.fit`` steps of the paper network took 20.5 s in 4 calls of 7 instead of
    10.5-12 s, even with a dataset that only repeats one batch; with autotuning off all 8 calls
    took 10.5-11 s (benchmarks/README.md, "Training").

    Example:
        >>> fixed_parallelism().autotune.enabled
        False
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


class PixelBuffers(NamedTuple):
    """Normalised images, class labels and weight maps of all samples, flat, row-major.

    Attributes:
        images: float32 ``(N, C)``, each image normalised over itself.
        labels: int32 ``(N,)`` class labels (:data:`~keras_unet.class_layout.UNLABELLED`: none).
        weights: float32 ``(N,)`` the weight map (0 on unlabelled pixels).
        offsets, heights, widths: int32 ``(S,)``: where sample ``s`` starts in the buffers and
            its size.
        depths: int32 ``(S,)``: the planes of volumes (``None`` for images).

    Example:
        >>> from keras_unet.data import synthetic_cells
        >>> buffers = prepare_buffers(synthetic_cells(1, size=32))
        >>> buffers.labels.shape, buffers.heights.numpy().tolist()
        (TensorShape([1024]), [32])
    """

    images: tf.Tensor
    labels: tf.Tensor
    weights: tf.Tensor
    offsets: tf.Tensor
    heights: tf.Tensor
    widths: tf.Tensor
    depths: tf.Tensor | None = None


def prepare_buffers(samples: Sequence[Sample], num_classes: int = 2,
                    labels: str = "instances") -> PixelBuffers:
    """Normalises every image and computes its class labels and weight map, once.

    Args:
        samples: checked samples (see :func:`make_dataset`).
        num_classes: instances: 2 (background, cell) or 3 (plus the border class); semantic:
            the K classes of the masks.
        labels: the samples' label mode, ``"instances"`` or ``"semantic"``.

    Example:
        >>> from keras_unet.data import synthetic_cells
        >>> buffers = prepare_buffers(synthetic_cells(2, size=32))
        >>> buffers.images.shape, buffers.offsets.numpy().tolist()
        (TensorShape([2048, 1]), [0, 1024])
    """
    images, classes, weights = [], [], []
    ndim = np.ndim(samples[0].labels)
    for sample in samples:
        image = sample.image if sample.image.ndim == ndim + 1 else sample.image[..., None]
        images.append(normalize_image(image, ndim=ndim).numpy().reshape(-1, image.shape[-1]))
        volume = {"spacing": sample.spacing} if ndim == 3 else {}  # physical distances
        try:
            if labels == "semantic":
                classes.append(np.asarray(sample.labels, np.int32).ravel())
                weights.append(class_weight_map(classes[-1], num_classes=num_classes)
                               .astype(np.float32))
            else:
                classes.append(class_labels(sample.labels, num_classes).ravel())
                weights.append(weight_map(sample.labels, num_classes=num_classes,
                                          **volume).ravel())
        except ValueError as error:
            raise InputError(f"{sample.path}: {error}") from error
    sizes = np.array([sample.labels.shape for sample in samples], np.int32).reshape(-1, ndim)
    pixels = np.prod(sizes.astype(np.int64), axis=1)
    return PixelBuffers(
        images=tf.constant(np.concatenate(images)),
        labels=tf.constant(np.concatenate(classes)),
        weights=tf.constant(np.concatenate(weights)),
        offsets=tf.constant(np.concatenate([[0], np.cumsum(pixels)[:-1]]).astype(np.int32)),
        heights=tf.constant(sizes[:, -2]),
        widths=tf.constant(sizes[:, -1]),
        depths=tf.constant(sizes[:, 0]) if ndim == 3 else None,
    )


def window_range(size: int, window: int) -> tuple[int, int]:
    """First and last start of an output window that can be drawn on an axis of ``size`` px.

    Windows start anywhere from the first to the last position that still covers image pixels
    edge to edge; an axis shorter than the window gets windows that contain all of it (the rest
    is mirrored).

    Example:
        >>> window_range(100, 36), window_range(20, 36)
        ((0, 64), (-16, 0))
    """
    return min(0, size - window), max(0, size - window)


def grid_windows(size: int, window: int) -> np.ndarray:
    """Starts of the fewest windows that cover an axis, evenly spread, edges included.

    Example:
        >>> grid_windows(100, 36).tolist(), grid_windows(20, 36).tolist()
        ([0, 32, 64], [-8])
    """
    count = math.ceil(size / window)
    if count == 1:
        return np.array([(size - window) // 2])
    return np.round(np.linspace(0, size - window, count)).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class TilePlan:
    """Output windows of one epoch: the grid covering every image, and where random ones may go.

    Images with unlabelled pixels (partial annotations) keep only the grid windows that hold a
    labelled pixel, and their random windows are drawn around a random labelled pixel (at a
    random place in the window), so no window is ever entirely unlabelled. (Windows are chosen
    before augmentation: the elastic deformation may move a window whose few labelled pixels lie
    at its edge off them; such a tile then weighs 0 in the loss and the metrics.) Volumes alike,
    with a third axis (their ``corners`` are ``(plane, row, column)``).

    Attributes:
        sample: int32 ``(T,)``: the image of each grid window.
        corners: int32 ``(T, n)``: the grid windows' first pixels (``top``, ``left`` of images).
        low, high: int32 ``(S, n)``: per image, the first and last allowed window start
            (rows, columns) of :func:`window_range`.
        windows: the output window's side along each axis.
        partial: bool ``(S,)``: images with unlabelled pixels.
        pixels: int32 ``(P,)``: row-major positions of the labelled pixels of partial images.
        pixel_offsets, pixel_counts: int32 ``(S,)``: where each image's positions start in
            ``pixels`` and how many it has.
        shapes: int32 ``(S, n)``: the size of every image.

    Example:
        >>> plan = TilePlan.for_sizes([(100, 30)], 36)  # 3 windows down, 1 across
        >>> len(plan), plan.sample.tolist()
        (3, [0, 0, 0])
    """

    sample: np.ndarray
    corners: np.ndarray
    low: np.ndarray
    high: np.ndarray
    windows: tuple[int, ...]
    partial: np.ndarray
    pixels: np.ndarray
    pixel_offsets: np.ndarray
    pixel_counts: np.ndarray
    shapes: np.ndarray

    @property
    def top(self) -> np.ndarray:
        """The rows of the grid windows' corners."""
        return self.corners[:, -2]

    @property
    def left(self) -> np.ndarray:
        """The columns of the grid windows' corners."""
        return self.corners[:, -1]

    @property
    def widths(self) -> np.ndarray:
        """The width of every image."""
        return self.shapes[:, -1]

    @property
    def window(self) -> int | tuple[int, ...]:
        """The output window's side (one per axis if they differ)."""
        return self.windows[0] if len(set(self.windows)) == 1 else self.windows

    @classmethod
    def for_sizes(cls, sizes: Sequence[tuple[int, ...]], window: int | Sequence[int],
                  labelled: Sequence[np.ndarray | None] | None = None) -> TilePlan:
        """The plan for images of ``(height, width)`` sizes and a ``window`` x ``window`` output.

        Args:
            sizes: ``(height, width)`` of every image (``(depth, height, width)`` of volumes).
            window: the output window's side, or one per axis.
            labelled: per image, a bool ``(H, W)`` mask of its labelled pixels, or ``None``
                (all labelled); each needs at least one labelled pixel.

        Example:
            >>> plan = TilePlan.for_sizes([(100, 30)], 36)
            >>> plan.top.tolist(), plan.left.tolist(), plan.low.tolist(), plan.high.tolist()
            ([0, 32, 64], [-3, -3, -3], [[0, -6]], [[64, 0]])
            >>> mask = np.zeros((100, 30), bool); mask[90:] = True  # only the bottom labelled
            >>> TilePlan.for_sizes([(100, 30)], 36, [mask]).top.tolist()
            [64]
            >>> len(TilePlan.for_sizes([(10, 100, 30)], (8, 36, 36)))  # 2 x 3 x 1 windows
            6
        """
        ndim = len(sizes[0])
        windows = (int(window),) * ndim if isinstance(window, (int, np.integer)) else tuple(
            int(w) for w in window)
        labelled = list(labelled) if labelled is not None else [None] * len(sizes)
        sample, corners, pixels = [], [], []
        for index, (shape, mask) in enumerate(zip(sizes, labelled)):
            starts = np.meshgrid(*(grid_windows(size, w) for size, w in zip(shape, windows)),
                                 indexing="ij")
            starts = np.stack([start.ravel() for start in starts], 1)
            if mask is not None:
                keep = _labelled_counts(mask, starts, windows) > 0
                starts = starts[keep]
                pixels.append(np.flatnonzero(mask))
            else:
                pixels.append(np.zeros(0, np.int64))
            sample.append(np.full(len(starts), index))
            corners.append(starts)
        ranges = np.array([[window_range(size, w) for size, w in zip(shape, windows)]
                           for shape in sizes])  # (S, axis, low/high)
        counts = np.array([len(p) for p in pixels], np.int64)
        return cls(np.concatenate(sample).astype(np.int32),
                   np.concatenate(corners).astype(np.int32).reshape(-1, ndim),
                   low=ranges[..., 0].astype(np.int32), high=ranges[..., 1].astype(np.int32),
                   windows=windows, partial=np.array([m is not None for m in labelled], bool),
                   pixels=np.concatenate(pixels).astype(np.int32),
                   pixel_offsets=np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32),
                   pixel_counts=counts.astype(np.int32),
                   shapes=np.array(sizes, np.int32).reshape(-1, ndim))

    def __len__(self) -> int:
        return len(self.sample)

    def random_windows(self, seed: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """An epoch of windows at uniformly random positions, as many per image as the grid:
        ``(sample, top, left)`` (volumes: ``(sample, front, top, left)``).

        Example:
            >>> plan = TilePlan.for_sizes([(100, 30), (40, 40)], 36)
            >>> sample, top, left = plan.random_windows(tf.constant([1, 2], tf.int64))
            >>> sorted(sample.numpy().tolist()), bool(tf.reduce_all(top <= 64))
            ([0, 0, 0, 1, 1, 1, 1], True)
        """
        ndim = len(self.windows)
        order = tf.argsort(tf.random.stateless_uniform([len(self)], seed))
        sample = tf.gather(self.sample, order)
        low = tf.gather(self.low, sample)
        span = tf.cast(tf.gather(self.high, sample) - low + 1, tf.float32)
        draw = tf.random.stateless_uniform([len(self), ndim],
                                           tf.random.experimental.stateless_fold_in(seed, 1))
        start = low + tf.minimum(tf.cast(draw * span, tf.int32), tf.cast(span, tf.int32) - 1)
        if self.partial.any():
            start = tf.where(tf.gather(self.partial, sample)[:, None],
                             self._around_labelled_pixels(sample, low, seed), start)
        return (sample, *(start[:, axis] for axis in range(ndim)))

    def _around_labelled_pixels(self, sample: tf.Tensor, low: tf.Tensor,
                                seed: tf.Tensor) -> tf.Tensor:
        """Window starts ``(T, n)`` that put a random labelled pixel at a random window place."""
        ndim = len(self.windows)
        draw = tf.random.stateless_uniform([len(self), 1 + ndim],
                                           tf.random.experimental.stateless_fold_in(seed, 2))
        counts = tf.gather(self.pixel_counts, sample)
        pick = tf.minimum(tf.cast(draw[:, 0] * tf.cast(counts, tf.float32), tf.int32),
                          tf.maximum(counts - 1, 0))
        index = tf.clip_by_value(tf.gather(self.pixel_offsets, sample) + pick, 0,
                                 max(len(self.pixels) - 1, 0))
        position = tf.gather(self.pixels, index)
        shape = tf.gather(self.shapes, sample)
        coordinates, stride = [], None
        for axis in reversed(range(ndim)):  # row-major: the last axis varies fastest
            size = shape[:, axis]
            quotient = position if stride is None else position // stride
            coordinates.insert(0, quotient if axis == 0 else quotient % size)
            stride = size if stride is None else stride * size
        pixel = tf.stack(coordinates, axis=1)
        window = self.window
        if isinstance(window, tuple):
            window = tf.constant(window, tf.int32)
            place = tf.minimum(tf.cast(draw[:, 1:] * tf.cast(window, tf.float32), tf.int32),
                               window - 1)
        else:
            place = tf.minimum(tf.cast(draw[:, 1:] * window, tf.int32), window - 1)
        return tf.clip_by_value(pixel - place, low, tf.gather(self.high, sample))


def _labelled_counts(mask: np.ndarray, starts: np.ndarray, windows: Sequence[int]) -> np.ndarray:
    """Labelled pixels of ``mask`` inside each window (the part of it on the image): a
    summed-area table, read at the ``2**n`` corners of every window."""
    table = np.asarray(mask, np.int64)
    for axis in range(mask.ndim):
        table = np.cumsum(table, axis=axis)
    table = np.pad(table, [(1, 0)] * mask.ndim)
    lows = [np.clip(starts[:, a], 0, size) for a, size in enumerate(mask.shape)]
    highs = [np.clip(starts[:, a] + w, 0, size) for a, (w, size) in
             enumerate(zip(windows, mask.shape))]
    total = np.zeros(len(starts), np.int64)
    for corner in itertools.product((0, 1), repeat=mask.ndim):
        sign = (-1) ** (mask.ndim - sum(corner))
        total += sign * table[tuple(h if c else lo for c, lo, h in zip(corner, lows, highs))]
    return total


def _check_samples(samples) -> tuple[int, int]:
    """Checks the samples; returns their channel count and spatial axes (2, or 3: volumes)."""
    if isinstance(samples, Sample) or not isinstance(samples, Sequence):
        raise InputError(f"samples must be a list of keras_unet.data.Sample, got "
                         f"{type(samples).__name__}.")
    if not samples:
        raise InputError("samples is empty: make_dataset needs at least one labelled image "
                         "(did the folder given to load_samples hold any image/mask pairs?).")
    channels, first, ndim = None, None, None
    total = 0
    for index, sample in enumerate(samples):
        if not isinstance(sample, Sample):
            raise InputError(f"samples[{index}] is a {type(sample).__name__}, not a "
                             "keras_unet.data.Sample.")
        image, labels = np.asarray(sample.image), np.asarray(sample.labels)
        volume = labels.ndim == 3
        if volume and image.ndim not in (3, 4) or not volume and image.ndim not in (2, 3) or (
                not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image)):
            kind = "(D, H, W) or (D, H, W, C)" if volume else "(H, W) or (H, W, C)"
            raise InputError(f"{sample.path}: image must be a real {kind} array, got "
                             f"{image.dtype} of shape {image.shape}.")
        spatial = image.shape[:labels.ndim]
        if labels.shape != spatial:
            raise InputError(f"{sample.path}: labels {labels.shape} and image {spatial} "
                             "differ in size.")
        if ndim is None:
            ndim = labels.ndim
        elif labels.ndim != ndim:
            raise InputError(f"{sample.path} is a {'volume' if volume else '2D image'} but "
                             f"{first} is {'a 2D image' if volume else 'a volume'}; a dataset "
                             "holds one or the other.")
        if image.dtype.kind == "f" and not np.isfinite(image).all():
            raise InputError(f"{sample.path}: image has NaN or infinite pixels.")
        sample_channels = 1 if image.ndim == labels.ndim else image.shape[-1]
        if channels is None:
            channels, first = sample_channels, sample.path
        elif sample_channels != channels:
            raise InputError(f"{sample.path} has {sample_channels} channel(s) but {first} has "
                             f"{channels}; all images of a dataset need the same channels.")
        total += labels.size
    if total > MAX_PIXELS:
        raise InputError(f"samples hold {total} pixels, more than the {MAX_PIXELS} one dataset "
                         "can index; split them into several datasets.")
    return channels, ndim


def _check_labels(samples: Sequence[Sample], labels: str, num_classes: int) -> None:
    """Every sample has a labelled pixel and no negative label but -1; semantic ids lie in
    0..num_classes-1."""
    for sample in samples:
        values = np.asarray(sample.labels)
        if not (values != UNLABELLED).any():
            raise InputError(f"{sample.path}: every pixel is unlabelled (ignore_label); leave "
                             "the image out or annotate part of it.")
        if values.min() < UNLABELLED:
            ids = (f"class ids 0..{num_classes - 1}" if labels == "semantic"
                   else "cell ids (0: background)")
            raise InputError(f"{sample.path}: holds label {values.min()}; labels are {ids}, "
                             f"and {UNLABELLED} marks unlabelled pixels.")
        if labels == "semantic" and values.max() >= num_classes:
            raise InputError(f"{sample.path}: holds class id {values.max()} but num_classes is "
                             f"{num_classes} (ids 0..{num_classes - 1}).")


def _check_arguments(tile_size, batch_size, num_classes, depth, padding, seed, labels,
                     ndim: int = 2, pooling=None, kernel_sizes=None):
    """Checks the scalar arguments; returns the tile, the output size of a tile and the border
    (ints for images; per axis for volumes)."""
    geometry.border(depth, padding)  # depth and padding errors name themselves
    if ndim == 2:
        try:
            out = geometry.output_size(tile_size, depth, padding)
        except ValueError as error:
            raise InputError(f"tile_size={tile_size!r} does not fit the network: {error}") \
                from error
        tile, context = tile_size, geometry.border(depth, padding)
    else:
        tile = (tile_size,) * 3 if isinstance(tile_size, (int, np.integer)) else tile_size
        try:
            tile = tuple(int(t) for t in tile)
        except (TypeError, ValueError):
            tile = ()
        if len(tile) != 3 or tile[1] != tile[2]:
            raise InputError(f"tile_size={tile_size!r}: a volume's tiles are an int or (depth, "
                             "size, size), square in y and x (they are rotated in the plane).")
        layout = {"pooling": pooling, "kernel_sizes": kernel_sizes}
        try:
            out = geometry.output_shape(tile, depth, padding, **layout)
        except ValueError as error:
            raise InputError(f"tile_size={tile_size!r} does not fit the network: {error}") \
                from error
        context = geometry.borders(3, depth, padding, **layout)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    if labels not in LABEL_MODES:
        raise InputError(f"labels must be one of {', '.join(LABEL_MODES)}, got {labels!r}.")
    if labels == "instances" and (num_classes not in NUM_CLASSES or isinstance(num_classes, bool)):
        raise InputError(f"num_classes must be 2 (background, cell) or 3 (background, cell, "
                         f"border) for instance labels, got {num_classes!r}.")
    if labels == "semantic" and (not isinstance(num_classes, int) or isinstance(num_classes, bool)
                                 or num_classes < 2):
        raise InputError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise InputError(f"seed must be None or an int, got {seed!r}.")
    return tile, out, context


def make_dataset(samples: Sequence[Sample], *, tile_size: int | Sequence[int], batch_size: int,
                 num_classes: int = 2, labels: str = "instances", augment: bool = True,
                 depth: int = 4, padding: str = "valid", shuffle: bool = True,
                 seed: int | None = None, repeat: bool = True, pooling=None, kernel_sizes=None,
                 spacing: Sequence[float] | None = None) -> tf.data.Dataset:
    """Batches of ``(image, label, weight)`` tiles that ``model.fit`` consumes directly.

    Each element is ``image`` float32 ``(B, tile_size, tile_size, C)``, ``label`` int32
    ``(B, out, out)`` and ``weight`` float32 ``(B, out, out)`` with
    ``out = keras_unet.output_size(tile_size, depth, padding)``: the labels and weight map
    (instances: the paper's :func:`keras_unet.weight_map`; semantic: class-balanced ``w_c``) of
    the window the network predicts, the image with the context around it that an unpadded
    network needs. Unlabelled pixels have label -1 and weight 0, and no window is entirely
    unlabelled (see :class:`TilePlan`). With
    :class:`keras_unet.losses.WeightedCrossentropy` the weight arrives as ``sample_weight``.

    An epoch has as many tiles as it takes to cover every image with output windows,
    ``ceil(H / out) * ceil(W / out)`` per image. With
    ``shuffle=False`` these are exactly the covering grid, image by image (a validation set with
    ``augment=False, repeat=False``); with ``shuffle=True`` the same number per image at
    uniformly random positions (any window that covers image pixels, so edges are trained too)
    in random order. Context beyond the image edge is mirrored, any distance: images smaller
    than the tile are fine. With ``augment=True`` every tile gets a random flip/90-degree
    rotation, the paper's elastic deformation (3x3 grid, 10 px) and gray-value variations
    (:mod:`keras_unet.augment`); random tile positions are the shifts.

    Same ``seed`` and arguments give the same batches. With ``repeat=True`` the dataset is
    infinite (pass ``steps_per_epoch`` to ``model.fit``).

    Volumes (samples with ``(D, H, W)`` labels) give ``(B, d, s, s, C)`` tiles and ``(B, d',
    s', s')`` labels and weights, the weight map computed in 3D with each sample's ``spacing``;
    augmentation draws one of 16 flips/rotations (the 8 of the y/x plane, with or without a z
    flip) and a 3x3x3 elastic deformation whose 10 px are physical (``spacing``: fewer planes
    along a coarse z).

    Args:
        samples: labelled images, e.g. from :func:`keras_unet.data.load_samples`.
        tile_size: input tile side, one the network takes (see :func:`keras_unet.output_size`);
            for volumes an int or ``(depth, size, size)``.
        batch_size: tiles per batch (>= 1).
        num_classes: the model's classes: instances 2 (background, cell) or 3 (plus border);
            semantic K >= 2, every mask id below it.
        labels: the samples' label mode, ``"instances"`` or ``"semantic"``.
        augment: apply the paper's augmentation.
        depth: the model's number of poolings.
        padding: the model's convolution padding, ``"valid"`` or ``"same"``.
        shuffle: random tile positions and order (else the covering grid in order).
        seed: int for repeatable batches; ``None`` draws one.
        repeat: repeat epochs forever.
        pooling, kernel_sizes: an anisotropic 3D network's per-axis layout (see
            :func:`keras_unet.build_unet`); ``None``: 2 and 3 on every axis.
        spacing: the voxel size the elastic deformation is drawn in (default: the first
            sample's, if it has one).

    Returns:
        A prefetching ``tf.data.Dataset``.

    Raises:
        ValueError: before any work, for empty samples, samples of mismatched sizes or channel
            counts, or a tile size, batch size, class count the network cannot take.

    Example:
        >>> from keras_unet.data import synthetic_cells
        >>> ds = make_dataset(synthetic_cells(2, size=64), tile_size=44, batch_size=3, depth=2,
        ...                   seed=0)
        >>> image, label, weight = next(iter(ds))
        >>> image.shape, label.shape, weight.shape
        (TensorShape([3, 44, 44, 1]), TensorShape([3, 4, 4]), TensorShape([3, 4, 4]))
        >>> from keras_unet.data import synthetic_volumes
        >>> volumes = make_dataset(synthetic_volumes(1, size=32), tile_size=44, batch_size=2,
        ...                        depth=2, seed=0)
        >>> [tuple(t.shape) for t in next(iter(volumes))]
        [(2, 44, 44, 44, 1), (2, 4, 4, 4), (2, 4, 4, 4)]
    """
    channels, ndim = _check_samples(samples)
    batch_size, num_classes, depth, seed = (python_int(value) for value in
                                            (batch_size, num_classes, depth, seed))
    tile_size = (tuple(python_int(t) for t in tile_size) if isinstance(tile_size, Sequence)
                 else python_int(tile_size))
    tile, out, context = _check_arguments(tile_size, batch_size, num_classes, depth, padding,
                                          seed, labels, ndim, pooling, kernel_sizes)
    _check_labels(samples, labels, num_classes)
    buffers = prepare_buffers(samples, num_classes, labels)
    labelled = [None if (sample.labels != UNLABELLED).all() else sample.labels != UNLABELLED
                for sample in samples]
    plan = TilePlan.for_sizes([sample.labels.shape for sample in samples], out, labelled)
    contexts = (context,) * 2 if ndim == 2 else context
    if spacing is None:
        spacing = samples[0].spacing if ndim == 3 else None
    spacing = None if spacing is None else geometry.check_spacing(spacing)
    base = tf.constant([np.random.SeedSequence().entropy % 2**62 if seed is None else seed, 0],
                       tf.int64)
    plan_seed, batch_seed = (tf.random.experimental.stateless_fold_in(base, i) for i in (0, 1))

    @tf.autograph.experimental.do_not_convert
    def epoch(index):
        if shuffle:
            sample, *starts = plan.random_windows(
                tf.random.experimental.stateless_fold_in(plan_seed, index))
        else:
            sample, starts = plan.sample, [plan.corners[:, axis] for axis in range(ndim)]
        return tf.data.Dataset.from_tensor_slices(
            (sample, *(start - border for start, border in zip(starts, contexts))))

    @tf.autograph.experimental.do_not_convert
    def tiles(index, windows):
        seed = tf.random.experimental.stateless_fold_in(batch_seed, index)
        if ndim == 2:
            image, label, weight = _read_tiles(buffers, *windows, seed, tile_size, out,
                                               context, augment)
            return (tf.ensure_shape(image, (None, tile_size, tile_size, channels)),
                    tf.ensure_shape(label, (None, out, out)),
                    tf.ensure_shape(weight, (None, out, out)))
        image, label, weight = _read_volume_tiles(buffers, *windows, seed, tile, out, context,
                                                  augment, spacing)
        return (tf.ensure_shape(image, (None, *tile, channels)),
                tf.ensure_shape(label, (None, *out)), tf.ensure_shape(weight, (None, *out)))

    epochs = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(1)
    batches = tf.data.INFINITE_CARDINALITY if repeat else math.ceil(len(plan) / batch_size)
    return (epochs.flat_map(epoch)
            .batch(batch_size)
            .apply(tf.data.experimental.assert_cardinality(batches))
            .enumerate()
            .map(tiles, num_parallel_calls=os.cpu_count() or 1, deterministic=True)
            .prefetch(PREFETCH_BATCHES)
            .with_options(fixed_parallelism()))


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _read_tiles(buffers: PixelBuffers, sample, top, left, seed, tile: int, out: int,
                border: int, augment: bool):
    """Reads a batch of tiles whose top-left input pixels are ``(top, left)`` in their images.

    One XLA-compiled function for all datasets, so datasets over the same images share the
    compiled code.
    """
    batch = tf.shape(sample)[0]
    seeds = [tf.random.experimental.stateless_fold_in(seed, i) for i in range(3)]
    if augment:
        rows, cols = dihedral_grid(tf.random.stateless_uniform([batch], seeds[0], 0, 8, tf.int32),
                                   tile)
        field = displacement_field(random_displacement(batch, seed=seeds[1]), tile, tile)
        rows, cols = rows + field[..., 0], cols + field[..., 1]
    else:
        rows, cols = dihedral_grid(tf.zeros([batch], tf.int32), tile)  # the identity
    rows = rows + tf.cast(top, tf.float32)[:, None, None]
    cols = cols + tf.cast(left, tf.float32)[:, None, None]
    layout = dict(offsets=tf.gather(buffers.offsets, sample),
                  heights=tf.gather(buffers.heights, sample),
                  widths=tf.gather(buffers.widths, sample))
    image = sample_mirrored(buffers.images, rows, cols, **layout,
                            interpolation="bilinear" if augment else "nearest")
    crop = slice(border, border + out)
    label, weight = sample_mirrored([buffers.labels, buffers.weights], rows[:, crop, crop],
                                    cols[:, crop, crop], **layout, interpolation="nearest")
    if augment:
        image = random_gray_values(image, seed=seeds[2])
    return image, label, weight


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _read_volume_tiles(buffers: PixelBuffers, sample, front, top, left, seed,
                       tile: tuple[int, int, int], out: tuple[int, int, int],
                       border: tuple[int, int, int], augment: bool,
                       spacing: tuple[float, ...] | None):
    """:func:`_read_tiles` of volumes: tiles whose first input voxels are ``(front, top,
    left)``, flipped/rotated in 16 ways and deformed on a 3x3x3 grid when ``augment``."""
    batch = tf.shape(sample)[0]
    seeds = [tf.random.experimental.stateless_fold_in(seed, i) for i in range(3)]
    if augment:
        planes, rows, cols = volume_grid(
            tf.random.stateless_uniform([batch], seeds[0], 0, 16, tf.int32), tile[0], tile[1])
        field = displacement_field(random_displacement(batch, seed=seeds[1], ndim=3,
                                                       spacing=spacing), *tile)
        planes, rows, cols = (planes + field[..., 0], rows + field[..., 1],
                              cols + field[..., 2])
    else:
        planes, rows, cols = volume_grid(tf.zeros([batch], tf.int32), tile[0], tile[1])
    planes, rows, cols = (grid + tf.cast(start, tf.float32)[:, None, None, None]
                          for grid, start in ((planes, front), (rows, top), (cols, left)))
    layout = dict(offsets=tf.gather(buffers.offsets, sample),
                  depths=tf.gather(buffers.depths, sample),
                  heights=tf.gather(buffers.heights, sample),
                  widths=tf.gather(buffers.widths, sample))
    image = sample_mirrored(buffers.images, rows, cols, planes=planes, **layout,
                            interpolation="bilinear" if augment else "nearest")
    crop = (slice(None), *(slice(b, b + o) for b, o in zip(border, out)))
    label, weight = sample_mirrored([buffers.labels, buffers.weights], rows[crop], cols[crop],
                                    planes=planes[crop], **layout, interpolation="nearest")
    if augment:
        image = random_gray_values(image, seed=seeds[2])
    return image, label, weight
