"""Synthetic microscopy: many touching cells with thin gaps, the embedded default dataset.

Each image is a packing of cells grown from jittered hexagonal seeds (a power diagram, so cells
differ in size, drawn in smoothly warped coordinates, so their borders curve), each cell capped
by a disk (so some corners round off into background) and a few seeds dropped (holes). Every
cell gives up a band of 0.5-1.5 px along each shared border, leaving gaps of 1-3 px between
neighbours. Rendering: per-cell brightness, a darker rim and nucleus, texture, uneven
illumination, blur, shot and read noise. After blurring, the gaps between touching cells are
faint: separating them is the hard part, as in the paper's DIC and phase-contrast data, and the
reason for its border weights.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import scipy.spatial

from keras_unet.data.samples import Sample
from keras_unet.errors import InputError

MIN_SIZE = 32
MIN_CELL_PIXELS = 12
CANDIDATE_STEP = 4


def synthetic_cells(n: int, size: int = 256, seed: int = 0) -> list[Sample]:
    """``n`` synthetic cell images of ``size x size`` pixels with their instance labels.

    Images are uint8 ``(size, size)``, labels int32 with ids ``1..N`` and 0 for the background;
    no two cells touch, not even at a corner, and each cell is one 4-connected piece, so
    ``labels > 0`` split by connected components gives the same cells back. Deterministic:
    image ``i`` depends only on ``(seed, i, size)``, so the first images of a longer list are
    the images of a shorter one. Paths are ``"synthetic:<i>"``.

    Args:
        n: number of images (>= 1).
        size: side length in pixels (>= 32).
        seed: random seed.

    Raises:
        ValueError: for ``n < 1`` or ``size < 32``.

    Example:
        >>> samples = synthetic_cells(2, size=64)
        >>> samples[1].path, samples[1].image.dtype, samples[1].labels.dtype
        ('synthetic:1', dtype('uint8'), dtype('int32'))
        >>> bool(samples[0].labels.max() >= 4)
        True
    """
    for name, value, low in (("n", n, 1), ("size", size, MIN_SIZE)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}.")
    return [_cell_image(np.random.default_rng([seed, index]), int(size), f"synthetic:{index}")
            for index in range(n)]


def _smooth_field(rng: np.random.Generator, size: int, knots: int) -> np.ndarray:
    """A smooth random field of unit-order amplitude: cubic upsampling of a coarse grid."""
    coarse = rng.standard_normal((knots, knots))
    upsample = scipy.ndimage.zoom(np.eye(knots), (size / knots, 1), order=3, mode="reflect")
    return upsample[:size] @ coarse @ upsample[:size].T  # the separable cubic zoom


def _seeds(rng: np.random.Generator, size: int, spacing: float) -> np.ndarray:
    """Jittered hexagonal lattice covering the image plus one spacing of margin."""
    row_step = spacing * np.sqrt(3) / 2
    rows = np.arange(-spacing, size + spacing, row_step)
    cols = np.arange(-spacing, size + spacing, spacing)
    yy, xx = np.meshgrid(rows, cols, indexing="ij")
    xx = xx + (np.arange(len(rows))[:, None] % 2) * spacing / 2
    points = np.stack([yy.ravel(), xx.ravel()], -1)
    points += rng.uniform(-0.3, 0.3, points.shape) * spacing
    keep = rng.random(len(points)) >= rng.uniform(0.03, 0.2)
    return points[keep]


def _cell_labels(rng: np.random.Generator, size: int) -> tuple[np.ndarray, ...]:
    """Instance labels plus the per-pixel geometry used to render them.

    Returns labels (0 = background), the distance of each pixel to its seed relative to the
    cell radius, and the distance of each pixel to its cell's edge (both in warped space).
    """
    spacing = rng.uniform(22.0, 32.0)
    seeds = _seeds(rng, size, spacing)
    power = rng.uniform(-0.12, 0.12, len(seeds)) * spacing**2
    radius = rng.uniform(0.55, 0.85, len(seeds)) * spacing
    half_gap = rng.uniform(0.5, 1.5, len(seeds))

    warp = 0.12 * spacing
    grid = np.mgrid[0:size, 0:size].astype(np.float64)
    grid[0] += warp * _smooth_field(rng, size, 5)
    grid[1] += warp * _smooth_field(rng, size, 5)
    points = grid.reshape(2, -1).T

    # Candidate seeds of each 4x4 block: the 6 nearest to its corner, a few px away; the two
    # best seeds of a pixel are among them unless seeds crowd far more than the lattice allows.
    coarse = grid[:, ::CANDIDATE_STEP, ::CANDIDATE_STEP].reshape(2, -1).T
    _, nearby = scipy.spatial.cKDTree(seeds).query(coarse, k=6)
    index = np.arange(size) // CANDIDATE_STEP
    candidates = nearby.reshape(len(grid[0, ::CANDIDATE_STEP]), -1, 6)[index][:, index]
    candidates = candidates.reshape(-1, 6)
    first, p1, to_border = _power_cells(points, seeds, power, candidates)
    to_seed = np.sqrt(np.maximum(p1 + power[first], 0.0))
    edge = np.minimum(to_border - half_gap[first], radius[first] - to_seed)
    inside = edge >= 0

    labels = np.where(inside, first + 1, 0).reshape(size, size)
    _separate_touching(labels)
    labels = _cells(labels)
    return labels, (to_seed / radius[first]).reshape(size, size), edge.reshape(size, size)


def _power_cells(points: np.ndarray, seeds: np.ndarray, power: np.ndarray,
                 candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every point, among its ``candidates`` seeds: the nearest seed of the power diagram
    (the cell it lies in), its power distance, and the signed distance to the power bisector
    of the two nearest seeds (a straight line or plane: the border with the next cell)."""
    offsets = points[:, None, :] - seeds[candidates]
    power_distance = np.einsum("pkc,pkc->pk", offsets, offsets) - power[candidates]
    rows = np.arange(len(points))
    best = np.argmin(power_distance, axis=1)
    first, p1 = candidates[rows, best], power_distance[rows, best]
    power_distance[rows, best] = np.inf
    runner_up = np.argmin(power_distance, axis=1)
    second, p2 = candidates[rows, runner_up], power_distance[rows, runner_up]
    to_border = (p2 - p1) / (2 * np.linalg.norm(seeds[first] - seeds[second], axis=1))
    return first, p1, to_border


def _separate_touching(labels: np.ndarray) -> None:
    """Clears pixels 8-adjacent to another cell, in place: a gap of at least 1 px everywhere."""
    height, width = labels.shape
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = labels[:height - dy, max(-dx, 0):width - max(dx, 0)]
        b = labels[dy:, max(dx, 0):width - max(-dx, 0)]
        a[(a > 0) & (b > 0) & (a != b)] = 0


def _cells(labels: np.ndarray) -> np.ndarray:
    """The 4-connected pieces of separated labels, slivers under MIN_CELL_PIXELS dropped, 1..N."""
    pieces, _ = scipy.ndimage.label(labels > 0)
    keep = np.bincount(pieces.ravel()) >= MIN_CELL_PIXELS
    keep[0] = False
    return np.where(keep, np.cumsum(keep), 0).astype(np.int32)[pieces]


def _cell_image(rng: np.random.Generator, size: int, path: str) -> Sample:
    labels, relative_radius, edge = _cell_labels(rng, size)
    cells = labels > 0
    brightness = rng.uniform(0.55, 1.0, labels.max() + 1)
    texture = scipy.ndimage.gaussian_filter(rng.standard_normal((size, size)), 1.5)
    cytoplasm = brightness[labels] * (1.0 - 0.35 * np.exp(-np.maximum(edge, 0) / 2.0))
    nucleus = 1.0 - 0.3 * (relative_radius < rng.uniform(0.3, 0.45))
    signal = np.where(cells, cytoplasm * nucleus * (1.0 + 0.6 * texture), 0.12)

    illumination = 1.0 + 0.25 * _smooth_field(rng, size, 3)
    slope = rng.uniform(-0.3, 0.3, 2) / size
    yy, xx = np.mgrid[0:size, 0:size]
    illumination *= 1.0 + slope[0] * (yy - size / 2) + slope[1] * (xx - size / 2)
    signal = scipy.ndimage.gaussian_filter(signal * illumination, rng.uniform(0.8, 1.5))

    photons = rng.uniform(40.0, 120.0)  # shot noise, Gaussian approximation, plus read noise
    spread = np.sqrt(np.maximum(signal, 0) / photons + 0.03**2)
    noisy = signal + spread * rng.standard_normal(signal.shape)
    image = np.clip(noisy * 200.0 + 10.0, 0, 255).astype(np.uint8)
    return Sample(image, labels, path)


MIN_VOLUME_SIZE = 24
MIN_NUCLEUS_VOXELS = 20
NEIGHBOUR_SEEDS = 8


def synthetic_volumes(n: int, size: int = 48, seed: int = 0,
                      spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
                      depth: int | None = None) -> list[Sample]:
    """``n`` synthetic volumes of touching nuclei, ``(depth, size, size)`` voxels, with labels.

    The 3D counterpart of :func:`synthetic_cells`, the demo and test data of the 3D U-Net: a
    packing of nuclei (about 14 px across) grown from a jittered lattice of seeds in physical
    space, each an ellipsoid of its own size and orientation cut by its power bisectors with
    its neighbours, so nuclei are star-convex and press against each other, with gaps of one or
    two voxels between them (no two nuclei touch, not even at a corner, and each is one
    6-connected piece). Rendering: per-nucleus brightness, chromatin texture, a blur elongated
    along z as a microscope's, a dim background, shot and read noise.

    Anisotropic stacks: ``spacing = (z, y, x)`` samples the same physical packing every
    ``z / y`` pixels along z (``depth`` defaults to the planes that span a cube), as a confocal
    stack with a coarser z step does.

    Args:
        n: number of volumes (>= 1).
        size: y and x side in voxels (>= 24).
        seed: random seed; volume ``i`` depends only on ``(seed, i, size, spacing, depth)``.
        spacing: voxel size ``(z, y, x)``, each > 0, y equal to x.
        depth: planes (default: ``size * y / z``, at least 8).

    Returns:
        Samples with uint8 ``(D, H, W)`` images, int32 labels ``1..N`` (0 background), their
        ``spacing``, and paths ``"synthetic-volume:<i>"``.

    Raises:
        ValueError: for ``n < 1``, ``size < 24``, a bad spacing or depth.

    Example:
        >>> [volume] = synthetic_volumes(1, size=32)
        >>> volume.image.shape, volume.labels.dtype, volume.spacing
        ((32, 32, 32), dtype('int32'), (1.0, 1.0, 1.0))
        >>> bool(volume.labels.max() >= 5)
        True
        >>> synthetic_volumes(1, size=32, spacing=(2.0, 0.5, 0.5))[0].image.shape
        (8, 32, 32)
    """
    from keras_unet.geometry import check_spacing

    for name, value, low in (("n", n, 1), ("size", size, MIN_VOLUME_SIZE)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}.")
    spacing = check_spacing(spacing)
    if len(spacing) != 3 or spacing[1] != spacing[2]:
        raise InputError(f"spacing must be (z, y, x) with y equal to x, got {spacing!r}.")
    if depth is None:
        depth = max(8, round(size * spacing[1] / spacing[0]))
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise InputError(f"depth must be an integer >= 1, got {depth!r}.")
    return [_nucleus_volume(np.random.default_rng([seed, index, 3]), int(depth), int(size),
                            spacing, f"synthetic-volume:{index}") for index in range(n)]


def _nucleus_labels(rng: np.random.Generator, shape: tuple[int, int, int],
                    step: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels of touching nuclei and each voxel's distance to its nucleus's surface (in px of
    y/x) on a grid whose planes are ``step`` px of y/x apart."""
    spacing = rng.uniform(12.0, 16.0)  # distance between neighbouring seeds, px
    extent = np.array([shape[0] * step, shape[1], shape[2]])
    axes = [np.arange(-spacing, e + spacing, spacing) for e in extent]
    seeds = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    seeds = seeds + rng.uniform(-0.3, 0.3, seeds.shape) * spacing
    seeds = seeds[rng.random(len(seeds)) >= rng.uniform(0.05, 0.15)]  # some missing
    count = len(seeds)
    radii = rng.uniform(0.45, 0.7, (count, 3)) * spacing
    rotations = np.linalg.qr(rng.standard_normal((count, 3, 3)))[0]
    power = rng.uniform(-0.1, 0.1, count) * spacing**2
    half_gap = rng.uniform(0.4, 1.0, count)

    grid = np.stack(np.meshgrid(np.arange(shape[0]) * step, np.arange(shape[1]),
                                np.arange(shape[2]), indexing="ij"), -1).reshape(-1, 3)
    _, candidates = scipy.spatial.cKDTree(seeds).query(grid, k=NEIGHBOUR_SEEDS)
    first, _, to_border = _power_cells(grid, seeds, power, candidates)
    # The ellipsoid: |R^T (x - c) / r| <= 1; its "radius" along the voxel's direction.
    local = np.einsum("pij,pi->pj", rotations[first], grid - seeds[first]) / radii[first]
    scale = np.linalg.norm(local, axis=1)
    to_seed = np.linalg.norm(grid - seeds[first], axis=1)
    along = np.where(scale > 0, to_seed / np.maximum(scale, 1e-9), radii[first].min(1))
    edge = np.minimum(to_border - half_gap[first], along - to_seed)
    labels = np.where(edge >= 0, first + 1, 0).reshape(shape)
    _separate_touching_3d(labels)
    return _pieces_3d(labels), edge.reshape(shape)


def _separate_touching_3d(labels: np.ndarray) -> None:
    """Clears voxels 26-adjacent to another nucleus, in place: a gap everywhere."""
    for dz, dy, dx in ((0, 0, 1), (0, 1, 0), (1, 0, 0), (0, 1, 1), (0, 1, -1), (1, 0, 1),
                       (1, 0, -1), (1, 1, 0), (1, -1, 0), (1, 1, 1), (1, 1, -1), (1, -1, 1),
                       (1, -1, -1)):
        a = labels[_cut(dz, labels.shape[0], 0), _cut(dy, labels.shape[1], 0),
                   _cut(dx, labels.shape[2], 0)]
        b = labels[_cut(dz, labels.shape[0], 1), _cut(dy, labels.shape[1], 1),
                   _cut(dx, labels.shape[2], 1)]
        a[(a > 0) & (b > 0) & (a != b)] = 0


def _cut(delta: int, length: int, second: int) -> slice:
    """The slice of an axis holding the first (``second=0``) or the shifted voxels of pairs
    ``delta`` apart."""
    if delta >= 0:
        return slice(delta, length) if second else slice(0, length - delta)
    return slice(0, length + delta) if second else slice(-delta, length)


def _pieces_3d(labels: np.ndarray) -> np.ndarray:
    """The 6-connected pieces of separated labels, slivers dropped, numbered 1..N."""
    pieces, _ = scipy.ndimage.label(labels > 0)
    keep = np.bincount(pieces.ravel()) >= MIN_NUCLEUS_VOXELS
    keep[0] = False
    return np.where(keep, np.cumsum(keep), 0).astype(np.int32)[pieces]


def _nucleus_volume(rng: np.random.Generator, depth: int, size: int,
                    spacing: tuple[float, ...], path: str) -> Sample:
    step = spacing[0] / spacing[1]  # planes apart, in px of y/x
    shape = (depth, size, size)
    labels, edge = _nucleus_labels(rng, shape, step)
    nuclei = labels > 0
    brightness = rng.uniform(0.5, 1.0, labels.max() + 1)
    texture = scipy.ndimage.gaussian_filter(rng.standard_normal(shape),
                                            (1.2 / step, 1.2, 1.2))
    texture /= max(texture.std(), 1e-6)
    rim = 1.0 - 0.3 * np.exp(-np.maximum(edge, 0) / 1.5)  # darker nuclear envelope
    signal = np.where(nuclei, brightness[labels] * rim * (1.0 + 0.25 * texture), 0.08)
    zz = np.arange(depth)[:, None, None] / max(depth - 1, 1)
    signal *= 1.0 - rng.uniform(0.0, 0.3) * zz  # dimmer deeper in the sample
    blur = rng.uniform(0.8, 1.3)
    signal = scipy.ndimage.gaussian_filter(signal, (2.0 * blur / step, blur, blur))
    photons = rng.uniform(30.0, 90.0)
    spread = np.sqrt(np.maximum(signal, 0) / photons + 0.03**2)
    noisy = signal + spread * rng.standard_normal(shape)
    image = np.clip(noisy * 200.0 + 10.0, 0, 255).astype(np.uint8)
    return Sample(image, labels, path, tuple(float(v) for v in spacing))
