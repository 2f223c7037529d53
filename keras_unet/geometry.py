"""Tile geometry of the U-Net: the one place that knows which sizes fit.

With unpadded ("valid") 3x3 convolutions every conv trims one pixel from each border and every
2x2 max-pool needs an even size, so only some input sizes are usable and the output is smaller
than the input by a fixed margin (184 px for the paper's depth-4 network: 572 -> 388). With
"same" padding the output equals the input and the input must be divisible by ``2**depth``.

Data tiling, overlap-tile inference and the served graph all import these functions, so they
agree by construction.
"""

from __future__ import annotations

import itertools

from keras_unet.errors import InputError

PADDINGS = ("valid", "same")


def _check_depth(depth: int) -> None:
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise InputError(f"depth must be an integer >= 1, got {depth!r}.")


def _check_padding(padding: str) -> None:
    if padding not in PADDINGS:
        raise InputError(f"padding must be one of {PADDINGS}, got {padding!r}.")


def output_size(input_size: int, depth: int = 4, padding: str = "valid") -> int:
    """Spatial output size of the U-Net for a given input size.

    Follows one spatial axis through the network: two 3x3 convolutions (-4 px when unpadded) and a
    2x2 max-pool (/2, needs an even size) per level, two convolutions at the bottom, then per level
    a 2x2 up-convolution (x2) and two convolutions (-4 px).

    Args:
        input_size: size of the input along one spatial axis, in pixels.
        depth: number of pooling steps (4 in the paper).
        padding: ``"valid"`` (the paper, unpadded convolutions) or ``"same"``.

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
    """
    _check_depth(depth)
    _check_padding(padding)
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 1:
        raise InputError(f"input size must be a positive integer, got {input_size!r}.")
    if padding == "same":
        if input_size % 2**depth:
            raise InputError(
                f"input size {input_size} is not divisible by 2**depth = {2**depth}; with "
                f"padding='same' use a multiple of {2**depth}, e.g. "
                f"{max(2**depth, input_size // 2**depth * 2**depth)} or "
                f"{(input_size // 2**depth + 1) * 2**depth}."
            )
        return input_size
    size = _valid_output(input_size, depth)
    if size is None:
        raise _invalid_size_error(input_size, depth)
    return size


def _valid_output(input_size: int, depth: int) -> int | None:
    """Output size of a valid-padding U-Net, or None when the input does not fit."""
    size = input_size
    for _ in range(depth):
        size -= 4
        if size < 2 or size % 2:
            return None
        size //= 2
    size -= 4
    for _ in range(depth):
        if size < 1:
            return None
        size = 2 * size - 4
    return size if size >= 1 else None


def _is_valid(input_size: int, depth: int) -> bool:
    return _valid_output(input_size, depth) is not None


def _invalid_size_error(input_size: int, depth: int) -> ValueError:
    smaller = next((s for s in range(input_size - 1, 0, -1) if _is_valid(s, depth)), None)
    larger = next(s for s in itertools.count(input_size + 1) if _is_valid(s, depth))
    nearest = f"{smaller} or {larger}" if smaller else f"{larger}"
    return ValueError(
        f"input size {input_size} does not fit a depth-{depth} U-Net with unpadded convolutions "
        f"(every size before a 2x2 max-pool must be even and positive); nearest valid sizes: "
        f"{nearest}."
    )


def valid_input_size(min_output: int, depth: int = 4, padding: str = "valid") -> int:
    """Smallest valid input size whose output covers ``min_output`` pixels.

    Args:
        min_output: the output size needed along one axis, in pixels (>= 1).
        depth: number of pooling steps.
        padding: ``"valid"`` or ``"same"``.

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
    if not isinstance(min_output, int) or isinstance(min_output, bool) or min_output < 1:
        raise InputError(f"min_output must be a positive integer, got {min_output!r}.")
    step = 2**depth
    if padding == "same":
        return -(-min_output // step) * step
    # Valid sizes are input(m) = step*m + offset for a bottom size m; the output grows by `step`
    # per step of m, so walk m upwards from the smallest network that produces any output.
    size = smallest_valid_input(depth)
    while output_size(size, depth) < min_output:
        size += step
    return size


def smallest_valid_input(depth: int = 4) -> int:
    """Smallest input size a depth-``depth`` valid-padding U-Net accepts.

    Example:
        >>> smallest_valid_input(4), output_size(smallest_valid_input(4))
        (188, 4)
    """
    _check_depth(depth)
    return next(s for s in itertools.count(1) if _is_valid(s, depth))


def border(depth: int = 4, padding: str = "valid") -> int:
    """Pixels the network trims from each side: ``(input - output) / 2``.

    This is the context an overlap-tile prediction must mirror around the image.

    Example:
        >>> border()
        92
        >>> border(padding="same")
        0
    """
    _check_depth(depth)
    _check_padding(padding)
    if padding == "same":
        return 0
    size = smallest_valid_input(depth)
    return (size - output_size(size, depth)) // 2


def tile_step(tile: int, depth: int = 4, padding: str = "valid") -> int:
    """Output pixels a valid-padding tile contributes: its output rounded down to ``2**depth``.

    Seamless tiles advance by a multiple of ``2**depth`` so that every max-pool of a tile sees
    the 2x2 windows of the whole image. For "same" padding this is the tile itself.

    Example:
        >>> tile_step(572)  # 388 px out, tiles advance by 384 to stay on the grid
        384
    """
    out = output_size(tile, depth, padding)
    return out - out % 2**depth if padding == "valid" else out


def valid_tile_size(min_output: int, depth: int = 4, padding: str = "valid") -> int:
    """Smallest input tile whose :func:`tile_step` covers ``min_output`` px.

    Example:
        >>> tile = valid_tile_size(388)
        >>> tile, tile_step(tile)
        (588, 400)
        >>> valid_tile_size(100, 2, "same")
        100
    """
    size = valid_input_size(min_output, depth, padding)
    while tile_step(size, depth, padding) < min_output:
        size += 2**depth
    return size
