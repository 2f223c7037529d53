"""Tile geometry of the U-Net: the one place that knows which sizes fit, per axis.

With unpadded ("valid") 3x3 convolutions every conv trims one pixel from each border and every
2x2 max-pool needs an even size, so only some input sizes are usable and the output is smaller
than the input by a fixed margin (184 px for the paper's depth-4 network: 572 -> 388). With
"same" padding the output equals the input and the input must be divisible by ``2**depth``.

Every rule is one axis's: a 3D U-Net (Cicek et al. 2016) follows each of its axes through the
same walk. Anisotropic volumes pool an axis only at some levels and may convolve it with
kernels of 1 (``pools`` and ``kernels`` of that axis; :func:`anisotropic_pooling` chooses them
from the voxel spacing, as nnU-Net does); by default every level pools by 2 and convolves by 3,
the paper's network. :func:`output_shape`, :func:`borders` and :func:`valid_input_shape` apply
the rules to every axis of a model's ``pooling`` and ``kernel_sizes``.

Data tiling, overlap-tile inference and the served graph all import these functions, so they
agree by construction.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from keras_unet.errors import InputError

PADDINGS = ("valid", "same")

PREDICTION_BATCH = 4
"""Tiles per model call when predicting (every entry point's ``batch_size``, ``--batch-size``);
the tiling plan takes fewer where large tiles would pass its memory budget."""

ANISOTROPY = 2.0
"""An axis whose voxel spacing is this many times the finest axis's (or more) is not pooled and
is convolved with kernels of 1 until pooling the other axes has made its spacing comparable
(:func:`anisotropic_pooling`; nnU-Net's rule)."""


def _check_depth(depth: int) -> None:
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise InputError(f"depth must be an integer >= 1, got {depth!r}.")


def _check_padding(padding: str) -> None:
    if padding not in PADDINGS:
        raise InputError(f"padding must be one of {PADDINGS}, got {padding!r}.")


def _axis_layout(depth: int, pools, kernels) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """One axis's pooling factor per level and kernel per level and bottleneck, checked; the
    defaults (``None``) are the paper's: 2 and 3 everywhere."""
    pools = (2,) * depth if pools is None else tuple(pools)
    kernels = (3,) * (depth + 1) if kernels is None else tuple(kernels)
    if len(pools) != depth or any(p not in (1, 2) or isinstance(p, bool) for p in pools):
        raise InputError(f"pools must be {depth} factors of 1 or 2 (one per level), got "
                         f"{pools!r}.")
    if len(kernels) != depth + 1 or any(k not in (1, 3) or isinstance(k, bool) for k in kernels):
        raise InputError(f"kernels must be {depth + 1} sizes of 1 or 3 (one per level and the "
                         f"bottleneck), got {kernels!r}.")
    return tuple(int(p) for p in pools), tuple(int(k) for k in kernels)


def grid(depth: int = 4, pools=None) -> int:
    """The pooling grid of an axis: the product of its pooling factors (``2**depth`` by default).

    Valid-padding tiles start on it and valid sizes differ by multiples of it.

    Example:
        >>> grid(4), grid(2, pools=(1, 2))
        (16, 2)
    """
    _check_depth(depth)
    return math.prod(_axis_layout(depth, pools, None)[0])


def output_size(input_size: int, depth: int = 4, padding: str = "valid", *, pools=None,
                kernels=None) -> int:
    """Spatial output size of the U-Net for a given input size.

    Follows one spatial axis through the network: two 3x3 convolutions (-4 px when unpadded) and a
    2x2 max-pool (/2, needs an even size) per level, two convolutions at the bottom, then per level
    a 2x2 up-convolution (x2) and two convolutions (-4 px). An axis of an anisotropic volume may
    skip the pooling of a level (factor 1: no halving, no evenness rule, no doubling) and have
    kernels of 1 there (nothing trimmed).

    Args:
        input_size: size of the input along one spatial axis, in pixels.
        depth: number of pooling steps (4 in the paper).
        padding: ``"valid"`` (the paper, unpadded convolutions) or ``"same"``.
        pools: this axis's pooling factor (1 or 2) at each of the ``depth`` levels (default 2).
        kernels: this axis's kernel size (1 or 3) at each level and the bottleneck (default 3).

    Returns:
        The output size along that axis.

    Raises:
        ValueError: if the network cannot take ``input_size`` (odd size before a pooling step, or
            nothing left after the convolutions), naming the nearest valid sizes.

    Example:
        >>> output_size(572)
        388
        >>> output_size(256, padding="same")
        256
        >>> output_size(20, 2, pools=(1, 2), kernels=(1, 3, 3))  # a z axis pooled only once
        4
    """
    _check_depth(depth)
    _check_padding(padding)
    pools, kernels = _axis_layout(depth, pools, kernels)
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 1:
        raise InputError(f"input size must be a positive integer, got {input_size!r}.")
    if padding == "same":
        step = math.prod(pools)
        if input_size % step:
            name = "2**depth" if step == 2**depth else "the product of the axis's poolings"
            raise InputError(
                f"input size {input_size} is not divisible by {name} = {step}; with "
                f"padding='same' use a multiple of {step}, e.g. "
                f"{max(step, input_size // step * step)} or "
                f"{(input_size // step + 1) * step}."
            )
        return input_size
    size = _valid_output(input_size, pools, kernels)
    if size is None:
        raise _invalid_size_error(input_size, depth, pools, kernels)
    return size


def _valid_output(input_size: int, pools: tuple[int, ...], kernels: tuple[int, ...]
                  ) -> int | None:
    """Output size of a valid-padding U-Net along one axis, or None when the input does not
    fit."""
    size = input_size
    for pool, kernel in zip(pools, kernels):
        size -= 2 * (kernel - 1)
        if size < pool or size % pool:
            return None
        size //= pool
    size -= 2 * (kernels[-1] - 1)
    for pool, kernel in zip(reversed(pools), reversed(kernels[:-1])):
        if size < 1:
            return None
        size = pool * size - 2 * (kernel - 1)
    return size if size >= 1 else None


def _is_valid(input_size: int, pools: tuple[int, ...], kernels: tuple[int, ...]) -> bool:
    return _valid_output(input_size, pools, kernels) is not None


def _invalid_size_error(input_size: int, depth: int, pools: tuple[int, ...],
                        kernels: tuple[int, ...]) -> ValueError:
    smaller = next((s for s in range(input_size - 1, 0, -1) if _is_valid(s, pools, kernels)),
                   None)
    larger = next(s for s in itertools.count(input_size + 1) if _is_valid(s, pools, kernels))
    nearest = f"{smaller} or {larger}" if smaller else f"{larger}"
    return ValueError(
        f"input size {input_size} does not fit a depth-{depth} U-Net with unpadded convolutions "
        f"(every size before a 2x2 max-pool must be even and positive); nearest valid sizes: "
        f"{nearest}."
    )


def valid_input_size(min_output: int, depth: int = 4, padding: str = "valid", *, pools=None,
                     kernels=None) -> int:
    """Smallest valid input size whose output covers ``min_output`` pixels.

    Args:
        min_output: the output size needed along one axis, in pixels (>= 1).
        depth: number of pooling steps.
        padding: ``"valid"`` or ``"same"``.
        pools, kernels: the axis's pooling factors and kernel sizes (see :func:`output_size`).

    Returns:
        The smallest input size ``n`` that the network accepts with
        ``output_size(n) >= min_output``.

    Example:
        >>> valid_input_size(388)
        572
        >>> valid_input_size(389)
        588
        >>> valid_input_size(100, padding="same")
        112
    """
    _check_depth(depth)
    _check_padding(padding)
    axis = _axis_layout(depth, pools, kernels)
    if not isinstance(min_output, int) or isinstance(min_output, bool) or min_output < 1:
        raise InputError(f"min_output must be a positive integer, got {min_output!r}.")
    step = math.prod(axis[0])
    if padding == "same":
        return -(-min_output // step) * step
    # Valid sizes are input(m) = step*m + offset for a bottom size m; the output grows by `step`
    # per step of m, so walk m upwards from the smallest network that produces any output.
    size = smallest_valid_input(depth, pools=pools, kernels=kernels)
    while output_size(size, depth, pools=pools, kernels=kernels) < min_output:
        size += step
    return size


def smallest_valid_input(depth: int = 4, *, pools=None, kernels=None) -> int:
    """Smallest input size a depth-``depth`` valid-padding U-Net accepts (along one axis).

    Example:
        >>> smallest_valid_input(4), output_size(smallest_valid_input(4))
        (188, 4)
        >>> smallest_valid_input(2, pools=(1, 1), kernels=(1, 1, 1))  # an axis never touched
        1
    """
    _check_depth(depth)
    pools, kernels = _axis_layout(depth, pools, kernels)
    return next(s for s in itertools.count(1) if _is_valid(s, pools, kernels))


def border(depth: int = 4, padding: str = "valid", *, pools=None, kernels=None) -> int:
    """Pixels the network trims from each side: ``(input - output) / 2``.

    This is the context an overlap-tile prediction must mirror around the image.

    Example:
        >>> border()
        92
        >>> border(padding="same")
        0
        >>> border(2, pools=(1, 2), kernels=(1, 3, 3))  # a z axis convolved by 3 from level 2
        8
    """
    _check_depth(depth)
    _check_padding(padding)
    _axis_layout(depth, pools, kernels)
    if padding == "same":
        return 0
    size = smallest_valid_input(depth, pools=pools, kernels=kernels)
    return (size - output_size(size, depth, pools=pools, kernels=kernels)) // 2


def tile_step(tile: int, depth: int = 4, padding: str = "valid", *, pools=None,
              kernels=None) -> int:
    """Output pixels a valid-padding tile contributes: its output rounded down to the grid.

    Seamless tiles advance by a multiple of ``2**depth`` (the axis's :func:`grid`) so that every
    max-pool of a tile sees the 2x2 windows of the whole image. For "same" padding this is the
    tile itself.

    Example:
        >>> tile_step(572)  # 388 px out, tiles advance by 384 to stay on the grid
        384
    """
    out = output_size(tile, depth, padding, pools=pools, kernels=kernels)
    return out - out % grid(depth, pools) if padding == "valid" else out


def valid_tile_size(min_output: int, depth: int = 4, padding: str = "valid", *, pools=None,
                    kernels=None) -> int:
    """Smallest input tile whose :func:`tile_step` covers ``min_output`` px.

    Example:
        >>> tile = valid_tile_size(388)
        >>> tile, tile_step(tile)
        (588, 400)
        >>> valid_tile_size(100, 2, "same")
        100
    """
    size = valid_input_size(min_output, depth, padding, pools=pools, kernels=kernels)
    while tile_step(size, depth, padding, pools=pools, kernels=kernels) < min_output:
        size += grid(depth, pools)
    return size


def anisotropic_pooling(spacing: Sequence[float], depth: int = 4
                        ) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]:
    """Pooling factors per level and kernel sizes per level (and bottleneck) from the spacing.

    The rule of the 3D U-Net on anisotropic stacks and of nnU-Net: at every level, an axis whose
    current spacing is less than :data:`ANISOTROPY` times the finest current spacing is pooled
    by 2 and convolved by 3; a coarser axis (z of a confocal stack) is neither pooled nor
    convolved across (kernel 1) until pooling the others has doubled their spacing up to its
    own. An isotropic spacing gives the paper's 2 and 3 everywhere.

    Args:
        spacing: the voxel (or pixel) size per axis, in any one unit, each > 0.
        depth: number of levels.

    Returns:
        ``(pooling, kernel_sizes)``: ``depth`` tuples of per-axis factors, and ``depth + 1``
        tuples of per-axis kernel sizes (the last for the bottleneck).

    Raises:
        InputError: for a spacing that is not positive and finite.

    Example:
        >>> anisotropic_pooling((2.0, 0.5, 0.5), 3)  # z four times coarser than y and x
        (((1, 2, 2), (1, 2, 2), (2, 2, 2)), ((1, 3, 3), (1, 3, 3), (3, 3, 3), (3, 3, 3)))
        >>> anisotropic_pooling((1, 1, 1), 2)
        (((2, 2, 2), (2, 2, 2)), ((3, 3, 3), (3, 3, 3), (3, 3, 3)))
    """
    _check_depth(depth)
    current = check_spacing(spacing)
    pooling, kernels = [], []
    for _ in range(depth + 1):
        finest = min(current)
        fine = [value / finest < ANISOTROPY for value in current]
        kernels.append(tuple(3 if f else 1 for f in fine))
        pooling.append(tuple(2 if f else 1 for f in fine))
        current = [value * p for value, p in zip(current, pooling[-1])]
    return tuple(pooling[:depth]), tuple(kernels)


def check_spacing(spacing, name: str = "spacing") -> tuple[float, ...]:
    """The voxel size as a tuple of positive finite floats, or a one-line error naming ``name``.

    Example:
        >>> check_spacing([2, 0.5, 0.5])
        (2.0, 0.5, 0.5)
        >>> check_spacing((0, 1, 1), "--spacing")
        Traceback (most recent call last):
        ...
        keras_unet.errors.InputError: --spacing must be positive and finite per axis, got (0, 1, 1).
    """
    try:
        values = tuple(float(v) for v in spacing)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number per axis, got {spacing!r}.") from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise InputError(f"{name} must be positive and finite per axis, got "
                         f"{tuple(spacing)!r}.")
    return values


def axis_layouts(ndim: int, depth: int, pooling=None, kernel_sizes=None
                 ) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """``(pools, kernels)`` of each of ``ndim`` axes from a model's ``pooling`` (per level, per
    axis) and ``kernel_sizes`` (per level and bottleneck, per axis); ``None``: the paper's.

    Example:
        >>> axis_layouts(3, 2, ((1, 2, 2), (2, 2, 2)), ((1, 3, 3), (3, 3, 3), (3, 3, 3)))[0]
        ((1, 2), (1, 3, 3))
    """
    _check_depth(depth)
    for name, table, rows in (("pooling", pooling, depth), ("kernel_sizes", kernel_sizes,
                                                             depth + 1)):
        if table is not None and (len(table) != rows or any(len(row) != ndim for row in table)):
            raise InputError(f"{name} must have {rows} rows of {ndim} per-axis values, got "
                             f"{table!r}.")
    layouts = []
    for axis in range(ndim):
        pools = None if pooling is None else tuple(row[axis] for row in pooling)
        kernels = None if kernel_sizes is None else tuple(row[axis] for row in kernel_sizes)
        layouts.append(_axis_layout(depth, pools, kernels))
    return layouts


def output_shape(input_shape: Sequence[int], depth: int = 4, padding: str = "valid", *,
                 pooling=None, kernel_sizes=None) -> tuple[int, ...]:
    """:func:`output_size` of every axis of an input shape (2 or 3 spatial axes).

    Example:
        >>> output_shape((20, 44, 44), 2, pooling=((1, 2, 2), (2, 2, 2)),
        ...              kernel_sizes=((1, 3, 3), (3, 3, 3), (3, 3, 3)))
        (4, 4, 4)
    """
    layouts = axis_layouts(len(input_shape), depth, pooling, kernel_sizes)
    return tuple(output_size(size, depth, padding, pools=pools, kernels=kernels)
                 for size, (pools, kernels) in zip(input_shape, layouts))


def borders(ndim: int, depth: int = 4, padding: str = "valid", *, pooling=None,
            kernel_sizes=None) -> tuple[int, ...]:
    """:func:`border` of every axis.

    Example:
        >>> borders(3, 2, pooling=((1, 2, 2), (2, 2, 2)),
        ...         kernel_sizes=((1, 3, 3), (3, 3, 3), (3, 3, 3)))
        (8, 20, 20)
    """
    return tuple(border(depth, padding, pools=pools, kernels=kernels)
                 for pools, kernels in axis_layouts(ndim, depth, pooling, kernel_sizes))


def valid_input_shape(min_output: Sequence[int], depth: int = 4, padding: str = "valid", *,
                      pooling=None, kernel_sizes=None) -> tuple[int, ...]:
    """:func:`valid_input_size` of every axis: the smallest valid input covering ``min_output``.

    Example:
        >>> valid_input_shape((1, 1, 1), 2)  # the smallest 3D input of a depth-2 network
        (44, 44, 44)
    """
    layouts = axis_layouts(len(min_output), depth, pooling, kernel_sizes)
    return tuple(valid_input_size(size, depth, padding, pools=pools, kernels=kernels)
                 for size, (pools, kernels) in zip(min_output, layouts))
