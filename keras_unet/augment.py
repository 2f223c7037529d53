"""The paper's data augmentation in batched TensorFlow ops: elastic deformation, flips and
90-degree rotations, shifts and gray-value variations.

"We generate smooth deformations using random displacement vectors on a coarse 3 by 3 grid. The
displacements are sampled from a Gaussian distribution with 10 pixels standard deviation.
Per-pixel displacements are then computed using bicubic interpolation." (Ronneberger et al.
2015, Sec. 3.1.)

Every geometric augmentation here is a map of source coordinates, read with
:func:`sample_mirrored`: one gather from a flat buffer of pixels with mirrored borders
(``d c b | a b c d | c b a``, like ``np.pad(mode="reflect")`` and overlap-tile inference),
bilinear for images and nearest-neighbour for labels and weight maps, so labels stay labels. The
same function reads training tiles straight out of whole images in
:func:`keras_unet.data.make_dataset`, where crop, mirror padding, flip/rotation and elastic
deformation become one gather per pixel. Everything is pure TensorFlow (no ``numpy_function``),
so it runs inside ``tf.data`` and inside an XLA-compiled ``tf.function``.

Volumes get the same augmentation in 3D (the 3D U-Net of Cicek et al. 2016): a 3x3x3 control
grid whose displacements are drawn in physical units (``spacing``: a coarse z step moves fewer
planes), the 16 flips/90-degree rotations that keep z an axis of its own (:func:`volume_grid`),
trilinear sampling with mirrored faces (:func:`sample_mirrored` with ``planes``) and the same
gray values.

Randomness: every ``seed`` argument is ``None`` (TensorFlow's global generator), an ``int``, or a
``(2,)`` integer tensor (stateless ops: the same seed gives the same result, also in ``tf.data``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_unet.errors import InputError
from keras_unet.inference.mirror import mirror

GRID = 3
"""Control points of the elastic deformation grid per axis (the paper's 3x3)."""

SIGMA = 10.0
"""Standard deviation of the grid displacements in pixels (the paper's 10 px)."""

INTERPOLATIONS = ("bilinear", "nearest")

Seed = int | Sequence[int] | tf.Tensor | None


def _stateless_seed(seed: Seed) -> tf.Tensor | None:
    """``None`` stays ``None``; an int becomes ``[seed, 0]``; a pair becomes an int64 tensor."""
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return tf.constant([int(seed), 0], tf.int64)
    seed = tf.convert_to_tensor(seed)
    if seed.shape != (2,) or not seed.dtype.is_integer:
        raise InputError(
            f"seed must be None, an int or a (2,) integer tensor, got {seed.dtype.name} "
            f"of shape {tuple(seed.shape)}."
        )
    return tf.cast(seed, tf.int64)


def _uniform(shape, seed: Seed, minval=0.0, maxval=1.0, dtype=tf.float32) -> tf.Tensor:
    seed = _stateless_seed(seed)
    if seed is None:
        return tf.random.uniform(shape, minval, maxval, dtype)
    return tf.random.stateless_uniform(shape, seed, minval, maxval, dtype)


def random_displacement(batch, grid: int = GRID, sigma: float = SIGMA, seed: Seed = None, *,
                        ndim: int = 2, spacing: Sequence[float] | None = None):
    """Random displacement vectors on a coarse ``grid`` x ``grid`` grid, ``N(0, sigma^2)`` pixels.

    Args:
        batch: number of fields to draw (an int or a scalar tensor, e.g. a dynamic batch size).
        grid: control points per axis (>= 2; the paper's 3).
        sigma: standard deviation of each displacement component, in pixels (the paper's 10).
        seed: ``None``, an int, or a ``(2,)`` integer tensor for stateless (repeatable) draws.
        ndim: 2, or 3 for a ``grid`` x ``grid`` x ``grid`` grid of a volume.
        spacing: the voxel size per axis: ``sigma`` is then in pixels of the finest axis and
            an axis of coarser voxels moves that many fewer of them (a physical displacement).

    Returns:
        float32 tensor ``(batch, grid, grid, 2)``: row and column displacement of every control
        point (a volume's ``(batch, grid, grid, grid, 3)``: plane, row and column).
        :func:`elastic_deform` spreads the grid over the image, corner points on the corner
        pixels.

    Example:
        >>> d = random_displacement(4, seed=7)
        >>> d.shape, bool(tf.reduce_all(d == random_displacement(4, seed=7)))
        (TensorShape([4, 3, 3, 2]), True)
    """
    if not isinstance(grid, int) or isinstance(grid, bool) or grid < 2:
        raise InputError(f"grid must be an integer >= 2, got {grid!r}.")
    if not sigma >= 0:
        raise InputError(f"sigma must be >= 0 pixels, got {sigma!r}.")
    if ndim not in (2, 3):
        raise InputError(f"ndim must be 2 or 3, got {ndim!r}.")
    shape = tf.stack([tf.cast(batch, tf.int32), *[grid] * ndim, ndim])
    seed = _stateless_seed(seed)
    if spacing is None:
        if seed is None:
            return tf.random.normal(shape, stddev=sigma)
        return tf.random.stateless_normal(shape, seed, stddev=sigma)
    from keras_unet.geometry import check_spacing

    spacing = np.asarray(check_spacing(spacing))
    if spacing.size != ndim:
        raise InputError(f"spacing must have {ndim} values, got {tuple(spacing)}.")
    scale = tf.constant(sigma * spacing.min() / spacing, tf.float32)
    unit = (tf.random.normal(shape) if seed is None else tf.random.stateless_normal(shape, seed))
    return unit * scale


def _cubic_bspline(t: tf.Tensor) -> tf.Tensor:
    """The cubic B-spline kernel beta3(t)."""
    t = tf.abs(t)
    return tf.where(t < 1.0, 2.0 / 3.0 - t * t + 0.5 * t * t * t,
                    tf.where(t < 2.0, (2.0 - t) ** 3 / 6.0, tf.zeros_like(t)))


def _spline_prefilter(points: int) -> np.ndarray:
    """Matrix from ``points`` samples to the cubic B-spline coefficients ``c_-1 .. c_points``.

    Interpolation means ``f_i = (c_{i-1} + 4 c_i + c_{i+1}) / 6`` at every control point, with
    mirror-symmetric coefficients (``c_-1 = c_1``, ``c_n = c_{n-2}``), the boundary condition of
    ``scipy.ndimage.spline_filter(mode="mirror")``. Returns a ``(points + 2, points)`` matrix.
    """
    system = np.zeros((points, points))
    for i in range(points):
        for j, factor in ((i - 1, 1.0), (i, 4.0), (i + 1, 1.0)):
            mirrored = -j if j < 0 else (2 * (points - 1) - j if j >= points else j)
            system[i, mirrored] += factor / 6.0
    coefficients = np.linalg.inv(system)
    return np.concatenate([coefficients[1:2], coefficients, coefficients[-2:-1]])


def _spline_matrix(points: int, size) -> tf.Tensor:
    """``(size, points)`` weights of the control points at every pixel of one axis.

    Control point ``k`` sits at pixel ``k * (size - 1) / (points - 1)``: the first and the last on
    the edge pixels.
    """
    size = tf.cast(size, tf.int32)
    pixel = tf.cast(tf.range(size), tf.float32)
    position = pixel * float(points - 1) / tf.cast(tf.maximum(size - 1, 1), tf.float32)
    knots = tf.range(-1, points + 1, dtype=tf.float32)
    basis = _cubic_bspline(position[:, None] - knots[None, :])
    return tf.matmul(basis, tf.constant(_spline_prefilter(points), tf.float32))


def displacement_field(displacement, *sizes) -> tf.Tensor:
    """Per-pixel displacements, bicubic interpolation of a coarse grid (cubic B-spline).

    ``displacement_field(grid, height, width)``; a volume's grid ``(B, planes, rows, cols, 3)``
    is interpolated tricubically (the same spline along each axis):
    ``displacement_field(grid, depth, height, width)`` is ``(B, depth, height, width, 3)``.

    The interpolating cubic spline through the control points with mirrored boundary conditions,
    the same field as ``scipy.ndimage.map_coordinates(grid, coordinates, order=3,
    mode="mirror")`` and as the ``elasticdeform`` package, computed as two small matrix products
    (separable), so the cost is negligible next to the sampling.

    Args:
        displacement: ``(B, rows, cols, 2)`` control-point displacements (rows, cols >= 2).
        height, width: size of the image the grid spans (ints or scalar tensors).

    Returns:
        float32 ``(B, height, width, 2)``; control point ``(i, j)`` lands on pixel
        ``(i * (height - 1) / (rows - 1), j * (width - 1) / (cols - 1))`` with its own value.

    Example:
        >>> grid = tf.reshape(tf.range(18, dtype=tf.float32), (1, 3, 3, 2))
        >>> field = displacement_field(grid, 5, 5)
        >>> field.shape, field[0, ::2, ::2, 0].numpy().round(4).tolist()
        (TensorShape([1, 5, 5, 2]), [[0.0, 2.0, 4.0], [6.0, 8.0, 10.0], [12.0, 14.0, 16.0]])
    """
    displacement = tf.convert_to_tensor(displacement, tf.float32)
    if len(sizes) == 3:
        return _volume_field(displacement, *sizes)
    if len(sizes) != 2:
        raise InputError(f"displacement_field takes (height, width) or (depth, height, width), "
                         f"got {len(sizes)} sizes.")
    height, width = sizes
    if displacement.shape.rank != 4 or displacement.shape[-1] != 2:
        raise InputError(
            f"displacement must have shape (batch, rows, cols, 2), got {displacement.shape}."
        )
    rows, cols = displacement.shape[1], displacement.shape[2]
    if rows is None or cols is None or rows < 2 or cols < 2:
        raise InputError(
            f"displacement grid must have a static size of at least 2x2, got {rows}x{cols}."
        )
    along_rows = tf.einsum("yi,bijc->byjc", _spline_matrix(rows, height), displacement)
    return tf.einsum("byjc,xj->byxc", along_rows, _spline_matrix(cols, width))


def _volume_field(displacement: tf.Tensor, depth, height, width) -> tf.Tensor:
    """:func:`displacement_field` of a ``(B, planes, rows, cols, 3)`` grid."""
    if displacement.shape.rank != 5 or displacement.shape[-1] != 3:
        raise InputError(f"a volume's displacement must have shape (batch, planes, rows, cols, "
                         f"3), got {displacement.shape}.")
    points = displacement.shape[1:4]
    if None in points or min(points) < 2:
        raise InputError(f"displacement grid must have a static size of at least 2x2x2, got "
                         f"{points}.")
    field = tf.einsum("zi,bijkc->bzjkc", _spline_matrix(points[0], depth), displacement)
    field = tf.einsum("yj,bzjkc->bzykc", _spline_matrix(points[1], height), field)
    return tf.einsum("bzykc,xk->bzyxc", field, _spline_matrix(points[2], width))

def sample_mirrored(values, rows, cols, *, offsets, heights, widths,
                    interpolation: str = "bilinear", planes=None, depths=None):
    """Reads pixels of images stored flat at fractional coordinates, with mirrored borders.

    Volumes: with ``planes`` (float ``(B, d, h, w)`` plane coordinates, ``rows`` and ``cols``
    of the same shape) and ``depths``, volume ``b`` occupies ``depths[b] * heights[b] *
    widths[b]`` values and is read trilinearly (``"bilinear"``) or by nearest neighbour.

    Image ``b`` of the batch occupies ``values[offsets[b] : offsets[b] + heights[b] * widths[b]]``
    in row-major order. Output pixel ``(b, i, j)`` is that image at row ``rows[b, i, j]``,
    column ``cols[b, i, j]``; coordinates outside the image are mirrored into it (any distance,
    also for images smaller than the output), then interpolated.

    Args:
        values: flat pixels ``(N,)`` or ``(N, C)``, or a list/tuple of such tensors with the same
            layout (e.g. labels and weights), all read at the same coordinates.
        rows, cols: float ``(B, h, w)`` source coordinates in pixels.
        offsets, heights, widths: int32 ``(B,)``: where each image starts and its size.
        interpolation: ``"bilinear"`` (float values) or ``"nearest"`` (any dtype; labels).

    Returns:
        ``(B, h, w)`` or ``(B, h, w, C)`` per input tensor (a tuple if ``values`` was a list or
        tuple), same dtype as the values.

    Example:
        >>> image = tf.constant([0.0, 10.0, 20.0])  # one 1x3 image
        >>> rows = tf.zeros((1, 1, 4)); cols = tf.constant([[[-1.0, 0.5, 2.0, 2.5]]])
        >>> sample_mirrored(image, rows, cols, offsets=[0], heights=[1], widths=[3]).numpy()
        array([[[10.,  5., 20., 15.]]], dtype=float32)
    """
    if interpolation not in INTERPOLATIONS:
        raise InputError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}.")
    several = isinstance(values, (list, tuple))
    values = [tf.convert_to_tensor(v) for v in (values if several else [values])]
    if planes is not None:
        outputs = _sample_volumes(values, planes, rows, cols, offsets, depths, heights, widths,
                                  interpolation)
        return tuple(outputs) if several else outputs[0]
    offsets, heights, widths = (
        tf.reshape(tf.cast(x, tf.int32), (-1, 1, 1)) for x in (offsets, heights, widths)
    )
    rows = tf.convert_to_tensor(rows, tf.float32)
    cols = tf.convert_to_tensor(cols, tf.float32)

    rows, cols = mirror(rows, heights), mirror(cols, widths)
    if interpolation == "nearest":
        row = tf.cast(tf.floor(rows + 0.5), tf.int32)
        col = tf.cast(tf.floor(cols + 0.5), tf.int32)
        flat = offsets + row * widths + col
        outputs = [tf.gather(v, flat) for v in values]
    else:
        top, left = tf.floor(rows), tf.floor(cols)
        fy, fx = rows - top, cols - left
        top, left = tf.cast(top, tf.int32), tf.cast(left, tf.int32)
        upper_row = offsets + top * widths
        lower_row = offsets + tf.minimum(top + 1, heights - 1) * widths
        right = tf.minimum(left + 1, widths - 1)
        corners = [upper_row + left, upper_row + right, lower_row + left, lower_row + right]
        outputs = []
        for v in values:
            if not v.dtype.is_floating:
                raise InputError(
                    f"bilinear interpolation needs float values, got {v.dtype.name}; use "
                    "interpolation='nearest' for labels."
                )
            v00, v01, v10, v11 = (tf.gather(v, c) for c in corners)
            wy, wx = tf.cast(fy, v.dtype), tf.cast(fx, v.dtype)
            if v.shape.rank == 2:
                wy, wx = wy[..., None], wx[..., None]
            upper = v00 + wx * (v01 - v00)
            lower = v10 + wx * (v11 - v10)
            outputs.append(upper + wy * (lower - upper))
    return tuple(outputs) if several else outputs[0]


def _sample_volumes(values, planes, rows, cols, offsets, depths, heights, widths,
                    interpolation: str) -> list[tf.Tensor]:
    """:func:`sample_mirrored` of volumes: trilinear or nearest, faces mirrored."""
    offsets, depths, heights, widths = (
        tf.reshape(tf.cast(x, tf.int32), (-1, 1, 1, 1)) for x in (offsets, depths, heights, widths)
    )
    coordinates = [mirror(tf.convert_to_tensor(c, tf.float32), size)
                   for c, size in ((planes, depths), (rows, heights), (cols, widths))]
    plane_stride = heights * widths
    if interpolation == "nearest":
        plane, row, col = (tf.cast(tf.floor(c + 0.5), tf.int32) for c in coordinates)
        flat = offsets + plane * plane_stride + row * widths + col
        return [tf.gather(v, flat) for v in values]
    lows = [tf.floor(c) for c in coordinates]
    fractions = [c - low for c, low in zip(coordinates, lows)]
    lows = [tf.cast(low, tf.int32) for low in lows]
    highs = [tf.minimum(low + 1, size - 1) for low, size in zip(lows, (depths, heights, widths))]
    outputs = []
    for v in values:
        if not v.dtype.is_floating:
            raise InputError(f"trilinear interpolation needs float values, got {v.dtype.name}; "
                             "use interpolation='nearest' for labels.")
        weights = [tf.cast(f, v.dtype) for f in fractions]
        if v.shape.rank == 2:
            weights = [w[..., None] for w in weights]
        planes_read = []
        for plane in lows[0], highs[0]:
            rows_read = []
            for row in lows[1], highs[1]:
                base = offsets + plane * plane_stride + row * widths
                left, right = tf.gather(v, base + lows[2]), tf.gather(v, base + highs[2])
                rows_read.append(left + weights[2] * (right - left))
            planes_read.append(rows_read[0] + weights[1] * (rows_read[1] - rows_read[0]))
        outputs.append(planes_read[0] + weights[0] * (planes_read[1] - planes_read[0]))
    return outputs


def volume_grid(k, depth, size) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Source planes, rows and columns of the ``k``-th of the 16 flips/rotations of a volume.

    ``k`` in 0..15: bits 0-2 as :func:`dihedral_grid` in the ``size`` x ``size`` planes, bit 3
    flips z. Rotations that would turn z into y or x are left out (z is usually sampled
    differently from y and x).

    Args:
        k: int ``(B,)`` transform per volume.
        depth: planes of the volumes.
        size: side of their square planes.

    Returns:
        float32 ``(B, depth, size, size)`` planes, rows and columns to read each voxel from.

    Example:
        >>> planes, rows, cols = volume_grid(tf.constant([8]), 3, 2)  # the z flip
        >>> planes.numpy()[0, :, 0, 0].tolist(), rows.numpy()[0, 0].tolist()
        ([2.0, 1.0, 0.0], [[0.0, 0.0], [1.0, 1.0]])
    """
    k = tf.reshape(tf.cast(k, tf.int32), (-1,))
    rows, cols = dihedral_grid(k, size)
    shape = tf.stack([tf.shape(k)[0], depth, size, size])
    rows = tf.broadcast_to(rows[:, None], shape)
    cols = tf.broadcast_to(cols[:, None], shape)
    plane = tf.cast(tf.range(depth), tf.float32)[None, :, None, None]
    flip = tf.reshape(tf.bitwise.bitwise_and(k, 8) > 0, (-1, 1, 1, 1))
    last = tf.cast(depth, tf.float32) - 1.0
    planes = tf.broadcast_to(tf.where(flip, last - plane, plane), shape)
    return planes, rows, cols


def _warp_batch(arrays, rows, cols, interpolation: str):
    """Samples equally sized ``(B, H, W, ...)`` arrays at ``(B, h, w)`` coordinates of their own."""
    shape = tf.shape(arrays[0])
    batch, height, width = shape[0], shape[1], shape[2]
    flat = [tf.reshape(a, tf.concat([[-1], tf.shape(a)[3:]], 0)) for a in arrays]
    return sample_mirrored(
        flat, rows, cols, offsets=tf.range(batch) * height * width,
        heights=tf.fill([batch], height), widths=tf.fill([batch], width),
        interpolation=interpolation,
    )


def _pixel_grid(batch, height, width) -> tuple[tf.Tensor, tf.Tensor]:
    """Row and column index of every pixel, float32 ``(batch, height, width)`` each."""
    rows = tf.cast(tf.range(height), tf.float32)[None, :, None]
    cols = tf.cast(tf.range(width), tf.float32)[None, None, :]
    shape = tf.stack([batch, height, width])
    return tf.broadcast_to(rows, shape), tf.broadcast_to(cols, shape)


def _check_batch(images, labels, weights, name: str):
    images = tf.convert_to_tensor(images)
    labels = tf.convert_to_tensor(labels)
    if images.shape.rank != 4:
        raise InputError(f"{name}: images must be (batch, height, width, channels), got "
                         f"shape {images.shape}.")
    if labels.shape.rank != 3:
        raise InputError(f"{name}: labels must be (batch, height, width), got shape "
                         f"{labels.shape}.")
    if not images.shape[:3].is_compatible_with(labels.shape):
        raise InputError(f"{name}: images {images.shape} and labels {labels.shape} differ in "
                         "batch or spatial size.")
    if weights is not None:
        weights = tf.convert_to_tensor(weights)
        if not weights.shape.is_compatible_with(labels.shape):
            raise InputError(f"{name}: weights {weights.shape} must have the labels' shape "
                             f"{labels.shape}.")
    return images, labels, weights


@tf.function(jit_compile=True, reduce_retracing=True)
def _warp(images, labels, weights, rows, cols, interpolation: str):
    """Images with ``interpolation``, labels and weights nearest-neighbour, at the same map.

    XLA-compiled (one cached trace per input signature) so that every caller gets the fused
    gather: a script calling eagerly, a ``Dataset.map``, a plain or an XLA ``tf.function``.
    """
    (images,) = _warp_batch([images], rows, cols, interpolation)
    nearest = _warp_batch([labels] if weights is None else [labels, weights], rows, cols,
                          "nearest")
    return (images, *nearest)


def elastic_deform(images, labels, displacement, weights=None):
    """The paper's elastic deformation of a batch of images with their labels (and weights).

    Output pixel ``p`` takes the input at ``p + d(p)``, where ``d`` is ``displacement``
    interpolated bicubically to every pixel (:func:`displacement_field`). Images are sampled
    bilinearly, labels and weight maps by nearest neighbour (labels stay labels); borders are
    mirrored. A zero displacement returns the inputs exactly.

    Args:
        images: float ``(B, H, W, C)``.
        labels: ``(B, H, W)`` (any dtype, typically int32).
        displacement: ``(B, rows, cols, 2)`` control-point displacements in pixels, e.g. from
            :func:`random_displacement`.
        weights: optional ``(B, H, W)`` pixel weight map, deformed like the labels.

    Returns:
        ``(images, labels)``, or ``(images, labels, weights)`` when weights are given, with the
        input shapes and dtypes.

    Example:
        >>> images = tf.random.stateless_uniform((2, 8, 8, 1), seed=[1, 2])
        >>> labels = tf.cast(images[..., 0] > 0.5, tf.int32)
        >>> same = elastic_deform(images, labels, tf.zeros((2, 3, 3, 2)))
        >>> bool(tf.reduce_all(same[0] == images)), bool(tf.reduce_all(same[1] == labels))
        (True, True)
        >>> moved = elastic_deform(images, labels, random_displacement(2, sigma=2.0, seed=1))
        >>> [t.shape for t in moved]
        [TensorShape([2, 8, 8, 1]), TensorShape([2, 8, 8])]
    """
    images, labels, weights = _check_batch(images, labels, weights, "elastic_deform")
    return _deform(images, labels, weights, displacement)


@tf.function(jit_compile=True, reduce_retracing=True)
def _deform(images, labels, weights, displacement):
    """The field, the grid and the warp of :func:`elastic_deform` as one XLA cluster."""
    shape = tf.shape(images)
    field = displacement_field(displacement, shape[1], shape[2])
    rows, cols = _pixel_grid(shape[0], shape[1], shape[2])
    return _warp(images, labels, weights, rows + field[..., 0], cols + field[..., 1], "bilinear")


def dihedral_grid(k, size) -> tuple[tf.Tensor, tf.Tensor]:
    """Source rows and columns of the ``k``-th of the 8 flips/90-degree rotations of a square.

    ``k`` in 0..7: bit 2 transposes, bit 0 flips rows (up-down), bit 1 flips columns
    (left-right); together they give all 4 rotations with and without a mirror.

    Args:
        k: int ``(B,)`` transform per image.
        size: side of the square images.

    Returns:
        float32 ``(B, size, size)`` rows and columns to read each output pixel from.

    Example:
        >>> rows, cols = dihedral_grid(tf.constant([4]), 2)  # the transpose
        >>> rows.numpy()[0].tolist(), cols.numpy()[0].tolist()
        ([[0.0, 1.0], [0.0, 1.0]], [[0.0, 0.0], [1.0, 1.0]])
    """
    k = tf.reshape(tf.cast(k, tf.int32), (-1, 1, 1))
    rows, cols = _pixel_grid(tf.shape(k)[0], size, size)
    transpose = tf.bitwise.bitwise_and(k, 4) > 0
    rows, cols = tf.where(transpose, cols, rows), tf.where(transpose, rows, cols)
    last = tf.cast(size, tf.float32) - 1.0
    rows = tf.where(tf.bitwise.bitwise_and(k, 1) > 0, last - rows, rows)
    cols = tf.where(tf.bitwise.bitwise_and(k, 2) > 0, last - cols, cols)
    return rows, cols


def random_flip_rotate(images, labels, weights=None, seed: Seed = None):
    """Applies one of the 8 flips/90-degree rotations per image, the same to labels and weights.

    Args:
        images: ``(B, S, S, C)`` square images (rotating a non-square batch would change its
            shape).
        labels: ``(B, S, S)``.
        weights: optional ``(B, S, S)``.
        seed: ``None``, an int, or a ``(2,)`` integer tensor.

    Returns:
        ``(images, labels)`` or ``(images, labels, weights)``, exact permutations of the inputs.

    Example:
        >>> images = tf.reshape(tf.range(8, dtype=tf.float32), (2, 2, 2, 1))
        >>> out, labels = random_flip_rotate(images, tf.cast(images[..., 0], tf.int32), seed=3)
        >>> sorted(out.numpy().ravel().tolist()) == list(range(8)), bool(tf.reduce_all(
        ...     labels == tf.cast(out[..., 0], tf.int32)))
        (True, True)
    """
    images, labels, weights = _check_batch(images, labels, weights, "random_flip_rotate")
    height, width = images.shape[1], images.shape[2]
    if height is not None and width is not None and height != width:
        raise InputError(
            f"random_flip_rotate needs square images (90-degree rotations keep the shape only "
            f"then), got {height}x{width}."
        )
    shape = tf.shape(images)
    k = _uniform([shape[0]], seed, 0, 8, tf.int32)
    rows, cols = dihedral_grid(k, shape[1])
    return _warp(images, labels, weights, rows, cols, "nearest")


def random_shift(images, labels, weights=None, max_shift: int = 10, seed: Seed = None):
    """Shifts every image by a random whole number of pixels (mirrored borders).

    Each image moves by ``(dy, dx)`` drawn uniformly from ``[-max_shift, max_shift]``, the same
    for its labels and weights. (In :func:`keras_unet.data.make_dataset` the random tile
    positions already are the shifts.)

    Args:
        images: ``(B, H, W, C)``.
        labels: ``(B, H, W)``.
        weights: optional ``(B, H, W)``.
        max_shift: largest shift in pixels per axis (>= 0).
        seed: ``None``, an int, or a ``(2,)`` integer tensor.

    Returns:
        ``(images, labels)`` or ``(images, labels, weights)``.

    Example:
        >>> images = tf.reshape(tf.range(16, dtype=tf.float32), (1, 4, 4, 1))
        >>> shifted, _ = random_shift(images, tf.zeros((1, 4, 4), tf.int32), max_shift=0)
        >>> bool(tf.reduce_all(shifted == images))
        True
    """
    if not isinstance(max_shift, int) or isinstance(max_shift, bool) or max_shift < 0:
        raise InputError(f"max_shift must be an integer >= 0 pixels, got {max_shift!r}.")
    images, labels, weights = _check_batch(images, labels, weights, "random_shift")
    shape = tf.shape(images)
    shift = tf.cast(_uniform([shape[0], 2], seed, -max_shift, max_shift + 1, tf.int32), tf.float32)
    rows, cols = _pixel_grid(shape[0], shape[1], shape[2])
    return _warp(images, labels, weights, rows + shift[:, 0, None, None],
                 cols + shift[:, 1, None, None], "nearest")


def random_gray_values(images, brightness: float = 0.1, contrast: float = 0.1,
                       gamma: float = 0.2, seed: Seed = None) -> tf.Tensor:
    """Random gray-value variations of normalised images: gamma, contrast, brightness.

    Per image (all channels alike): a gamma curve ``lo + (hi - lo) * t**g`` on the image's own
    range ``[lo, hi]`` (``t`` the value rescaled to ``[0, 1]``, ``log g ~ U(-gamma, gamma)``),
    then contrast ``mean + c * (x - mean)`` with ``c ~ U(1 - contrast, 1 + contrast)``, then
    brightness ``x + b`` with ``b ~ U(-brightness, brightness)``. On images normalised to zero
    mean and unit variance the amounts are in units of the image's standard deviation.

    Args:
        images: float ``(B, H, W, C)``, or volumes ``(B, D, H, W, C)``.
        brightness: largest additive offset (>= 0).
        contrast: largest relative change of contrast (in ``[0, 1)``).
        gamma: largest ``|log gamma|`` (>= 0).
        seed: ``None``, an int, or a ``(2,)`` integer tensor.

    Returns:
        float ``(B, H, W, C)``.

    Example:
        >>> images = tf.random.stateless_normal((2, 4, 4, 1), seed=[0, 1])
        >>> same = random_gray_values(images, brightness=0, contrast=0, gamma=0, seed=1)
        >>> float(tf.reduce_max(tf.abs(same - images))) < 1e-5
        True
    """
    for name, value in (("brightness", brightness), ("gamma", gamma)):
        if not value >= 0:
            raise InputError(f"{name} must be >= 0, got {value!r}.")
    if not 0 <= contrast < 1:
        raise InputError(f"contrast must be in [0, 1), got {contrast!r}.")
    images = tf.convert_to_tensor(images)
    if images.shape.rank not in (4, 5) or not images.dtype.is_floating:
        raise InputError(f"random_gray_values: images must be float (batch, height, width, "
                         f"channels), got {images.dtype.name} of shape {images.shape}.")
    rank = images.shape.rank
    axes = list(range(1, rank))
    draws = _uniform([tf.shape(images)[0], *[1] * (rank - 2), 3], seed, -1.0, 1.0)
    log_gamma, factor, offset = (tf.cast(draws[..., i:i + 1], images.dtype) for i in range(3))
    low = tf.reduce_min(images, axis=axes, keepdims=True)
    span = tf.maximum(tf.reduce_max(images, axis=axes, keepdims=True) - low, 1e-6)
    # t**g as exp(g log t): the same curve (0 stays 0), several times faster than pow under XLA
    images = low + span * tf.exp(tf.exp(gamma * log_gamma) * tf.math.log((images - low) / span))
    mean = tf.reduce_mean(images, axis=axes, keepdims=True)
    images = mean + (1.0 + contrast * factor) * (images - mean)
    return images + brightness * offset
