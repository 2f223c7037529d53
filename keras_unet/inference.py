"""Overlap-tile prediction of images of any size (Ronneberger et al. 2015, Fig. 2).

The unpadded U-Net predicts a tile's centre from the tile plus a border of context. To segment a
whole image, the image is normalised once (over the whole image, :func:`normalize_image`),
mirrored at its edges by that border, cut into tiles whose outputs sit side by side, and the
outputs are stitched. Because every tile starts on the max-pooling grid of the whole padded image
(a multiple of ``2**depth`` pixels), the stitched map equals the prediction of the whole padded
image in one pass: the result is seamless to float precision. Models with "same" padding have no
such identity; their tiles overlap by a quarter and are blended with linear-ramp weights.

The model's depth and padding are read from the model itself (:func:`model_geometry`), tile sizes
are chosen to keep the border wasted by unpadded convolutions small within a memory budget, and
tiles are batched through one compiled ``tf.function`` that does not retrace per tile.
:mod:`keras_unet.streaming` runs the same tiling band by band over TIFFs larger than memory.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from keras_unet import geometry
from keras_unet.layers import CropToMatch
from keras_unet.normalization import normalize_image

MEMORY_BUDGET = 2 * 2**30
"""Bytes of activations one model call may use; sets the default tile size and batch."""

ACTIVATION_FACTOR = 5
"""Peak memory of a forward pass, in float32 full-resolution maps of ``filters`` channels.

Measured on CPU for the paper's network (``benchmarks/inference_benchmark.py memory``): 2.7 at a
572 tile, 5.1 at 1084, 4.8 at 1436; the large tiles that the budget decides about set it.
"""

MAX_TILE = 2048
"""Largest default tile side, whatever the budget allows a narrow network: the border waste is
already down to 1.21 input px per output px there (1.38 at the paper network's default of 1276),
while the band of tiles that a streamed image holds grows with the tile."""

SAME_OVERLAP = 0.25
"""Fraction of a tile shared with its neighbour when tiling a "same"-padding model."""


@dataclasses.dataclass(frozen=True)
class ModelGeometry:
    """What tiling needs to know about a U-Net, read from the model by :func:`model_geometry`.

    Attributes:
        depth: number of 2x2 max-pooling steps.
        padding: ``"valid"`` (output smaller than input by ``2 * border``) or ``"same"``.
        channels: image channels the model takes.
        num_classes: channels of the output (class probabilities).
        input_size: fixed ``(height, width)`` of the model's input; ``None`` entries are free.
        filters: channels of the first level (to estimate memory per tile).

    Example:
        >>> ModelGeometry(4, "valid", 1, 2, (None, None), 64).border  # the paper's 92 px
        92
    """

    depth: int
    padding: str
    channels: int
    num_classes: int
    input_size: tuple[int | None, int | None]
    filters: int

    @property
    def border(self) -> int:
        """Pixels of context lost on each side (0 for "same" padding)."""
        return geometry.border(self.depth, self.padding)


def model_geometry(model: keras.Model) -> ModelGeometry:
    """Reads depth, padding, channels and classes from a U-Net built by :func:`build_unet`.

    The depth is the number of ``MaxPooling2D`` layers and a valid-padding model is one with
    ``CropToMatch`` layers (nested models are searched too); the result is then checked against
    the model's own ``compute_output_shape``, so a model that is not a U-Net of that geometry is
    rejected rather than tiled wrongly.

    Raises:
        ValueError: if the model has no max-pooling layer, several inputs or outputs, or output
            shapes that do not match the geometry read from its layers.

    Example:
        >>> from keras_unet import build_unet
        >>> model_geometry(build_unet((None, None, 3), 2, filters=4, depth=2))
        ModelGeometry(depth=2, padding='valid', channels=3, num_classes=2,
                      input_size=(None, None), filters=4)
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model, got {type(model).__name__}.")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; tiled prediction needs one image input and one probability output."
        )
    layers = list(_walk(model))
    depth = sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in layers)
    if depth == 0:
        raise ValueError(
            f"model {model.name!r} has no MaxPooling2D layer, so it is not a U-Net whose depth "
            "tiling can read; build it with keras_unet.build_unet."
        )
    padding = "valid" if any(isinstance(layer, CropToMatch) for layer in layers) else "same"
    convs = [layer for layer in layers if isinstance(layer, keras.layers.Conv2D)]
    _, height, width, channels = model.input_shape
    probe = valid_tile_size(64, depth, padding)
    probe_shape = (1, height or probe, width or probe, channels)
    out_shape = tuple(model.compute_output_shape(probe_shape))
    expected = tuple(geometry.output_size(size, depth, padding) for size in probe_shape[1:3])
    if out_shape[1:3] != expected:
        raise ValueError(
            f"model {model.name!r} maps a {probe_shape[1]}x{probe_shape[2]} input to "
            f"{out_shape[1]}x{out_shape[2]}, but a depth-{depth} {padding}-padding U-Net gives "
            f"{expected[0]}x{expected[1]}; it is not a U-Net that can be tiled."
        )
    return ModelGeometry(depth, padding, int(channels), int(out_shape[-1]), (height, width),
                         int(convs[0].filters) if convs else 1)


def _walk(layer) -> Iterator[keras.layers.Layer]:
    for sub in getattr(layer, "layers", ()):
        yield sub
        yield from _walk(sub)


def valid_tile_size(min_output: int, depth: int, padding: str) -> int:
    """Smallest input tile whose output covers ``min_output`` px on the pooling grid.

    The tiles of a seamless prediction advance by a multiple of ``2**depth`` (so that every
    max-pool of a tile sees the same 2x2 windows as the whole image), which for a valid-padding
    model is the output size rounded down to such a multiple (:func:`tile_step`).

    Example:
        >>> tile = valid_tile_size(388, 4, "valid")
        >>> tile, tile_step(tile, 4, "valid")
        (588, 400)
        >>> valid_tile_size(100, 2, "same")
        100
    """
    size = geometry.valid_input_size(min_output, depth, padding)
    while tile_step(size, depth, padding) < min_output:
        size += 2**depth
    return size


def tile_step(tile: int, depth: int, padding: str) -> int:
    """Output pixels a valid-padding tile contributes: its output rounded down to ``2**depth``.

    For "same" padding this is the tile itself (overlap is decided by the tiling).

    Example:
        >>> tile_step(572, 4, "valid")  # 388 px out, tiles advance by 384 to stay on the grid
        384
    """
    out = geometry.output_size(tile, depth, padding)
    return out - out % 2**depth if padding == "valid" else out


@dataclasses.dataclass(frozen=True)
class AxisPlan:
    """How one image axis is cut into tiles.

    Tile ``k`` reads padded-image pixels ``[k * step, k * step + tile)`` and adds its kept output,
    multiplied by ``weights``, at accumulator pixels ``[k * step, k * step + len(weights))``.
    Image pixel ``i`` is accumulator pixel ``i + origin`` and padded-image pixel ``i + before``.

    Example:
        >>> plan = plan_axis(100, ModelGeometry(2, "same", 1, 2, (None, None), 4), 32, 32)
        >>> plan.step, plan.count, plan.padded, plan.length, bool(plan.weight_sum().min() > 0)
        (24, 5, 128, 128, True)
    """

    size: int
    tile: int
    step: int
    count: int
    before: int
    origin: int
    weights: np.ndarray

    @property
    def padded(self) -> int:
        """Length of the mirror-padded image the tiles read."""
        return (self.count - 1) * self.step + self.tile

    @property
    def length(self) -> int:
        """Length of the accumulator the tile outputs are added to."""
        return (self.count - 1) * self.step + len(self.weights)

    def weight_sum(self) -> np.ndarray:
        """Sum of the tile weights at every accumulator pixel."""
        total = np.zeros(self.length, np.float32)
        for k in range(self.count):
            total[k * self.step:k * self.step + len(self.weights)] += self.weights
        return total


def plan_axis(size: int, geom: ModelGeometry, tile: int | None, max_tile: int) -> AxisPlan:
    """Tiles one axis of ``size`` pixels; ``tile=None`` picks the tile from ``max_tile``.

    Example:
        >>> geom = ModelGeometry(2, "valid", 1, 2, (None, None), 4)
        >>> plan = plan_axis(130, geom, None, 92)
        >>> plan.tile, plan.step, plan.count, plan.before, plan.padded >= 130 + 2 * 20
        (84, 44, 3, 20, True)
    """
    depth, padding = geom.depth, geom.padding
    if geom.padding == "valid":
        if tile is None:
            largest = valid_tile_size(1, depth, padding)
            while largest + 2**depth <= max_tile:
                largest += 2**depth
            count = math.ceil(size / tile_step(largest, depth, padding))
            tile = valid_tile_size(math.ceil(size / count), depth, padding)
        step = tile_step(tile, depth, padding)
        count = math.ceil(size / step)
        return AxisPlan(size, tile, step, count, geom.border, 0, np.ones(step, np.float32))
    if tile is None:
        tile = min(valid_tile_size(size, depth, padding),
                   max(2**depth, max_tile // 2**depth * 2**depth))
    if tile >= size:
        return AxisPlan(size, tile, tile, 1, 0, 0, np.ones(tile, np.float32))
    overlap = int(tile * SAME_OVERLAP) // 2**depth * 2**depth
    step = tile - overlap
    margin = overlap // 2
    count = max(1, math.ceil((size + 2 * margin - tile) / step) + 1)
    ramp = (np.minimum(np.arange(tile), np.arange(tile)[::-1]) + 1) / (overlap + 1)
    return AxisPlan(size, tile, step, count, margin, margin,
                    np.minimum(ramp, 1.0).astype(np.float32))


def plan_tiles(shape: tuple[int, int], geom: ModelGeometry, tile_size=None,
               batch_size: int = 4) -> tuple[AxisPlan, AxisPlan, int]:
    """Plans the tiles of an image of ``shape = (height, width)``; returns the axes and batch.

    ``tile_size`` (an int or a ``(height, width)`` pair of model input sizes) defaults to the
    model's fixed input size, else to the largest tile (up to :data:`MAX_TILE`) whose
    :func:`activation_bytes` fit :data:`MEMORY_BUDGET`, shrunk to cover the image with as little
    waste as possible. Larger tiles waste less of the border that unpadded convolutions lose
    (the paper network's 572 tile computes 2.22 input px per output px; its default of 1276 px,
    1.38) and run at least as many FLOP/s (``benchmarks/README.md``). The batch is
    ``batch_size`` tiles, fewer when large tiles would exceed the budget together.

    Raises:
        ValueError: for a tile the model cannot take or that contradicts its fixed input size.

    Example:
        >>> geom = ModelGeometry(2, "valid", 1, 2, (None, None), 4)
        >>> rows, cols, batch = plan_tiles((37, 53), geom)
        >>> (rows.tile, rows.count), (cols.tile, cols.count), batch
        ((80, 1), (96, 1), 4)
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    tiles = _requested_tiles(tile_size, geom)
    max_tile = min(MAX_TILE, math.isqrt(MEMORY_BUDGET // activation_bytes(geom, 1, 1)))
    rows, cols = (plan_axis(size, geom, tile, max_tile) for size, tile in zip(shape, tiles))
    per_tile = activation_bytes(geom, rows.tile, cols.tile)
    return rows, cols, max(1, min(batch_size, MEMORY_BUDGET // per_tile))


def activation_bytes(geom: ModelGeometry, height: int, width: int) -> int:
    """Estimated peak memory of one forward pass on a ``height`` x ``width`` tile, in bytes.

    :data:`ACTIVATION_FACTOR` float32 maps of the first level's ``filters`` channels.

    Example:
        >>> paper = ModelGeometry(4, "valid", 1, 2, (None, None), 64)
        >>> activation_bytes(paper, 1276, 1276) / 2**30  # the paper network's largest default
        1.94...
    """
    return 4 * geom.filters * ACTIVATION_FACTOR * height * width


def _requested_tiles(tile_size, geom: ModelGeometry) -> tuple[int | None, int | None]:
    if tile_size is None:
        tiles = geom.input_size
    else:
        tiles = (tile_size, tile_size) if isinstance(tile_size, int) else tuple(tile_size)
        if len(tiles) != 2 or not all(isinstance(t, int) and not isinstance(t, bool) and t > 0
                                      for t in tiles):
            raise ValueError(f"tile_size must be a positive int or a (height, width) pair, got "
                             f"{tile_size!r}.")
        for tile, fixed, axis in zip(tiles, geom.input_size, ("height", "width")):
            if fixed is not None and tile != fixed:
                raise ValueError(f"tile_size {tile_size!r} differs from the model's fixed input "
                                 f"{axis} {fixed}; leave tile_size=None to use it.")
    for tile in tiles:
        if tile is not None:
            try:
                step = tile_step(tile, geom.depth, geom.padding)
            except ValueError as error:
                raise ValueError(f"tile_size {tile_size!r}: {error}") from None
            if step < 1:
                raise ValueError(
                    f"tile_size {tile} gives {geometry.output_size(tile, geom.depth)} output px, "
                    f"less than one 2**depth = {2**geom.depth} step; use at least "
                    f"{valid_tile_size(1, geom.depth, geom.padding)}."
                )
    return tiles


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled_forward(model: keras.Model, geom: ModelGeometry) -> Callable[[np.ndarray], tf.Tensor]:
    """The model's inference call as one ``tf.function`` per model, traced once for all tiles.

    The input signature leaves batch, height and width free (unless the model fixes them), so
    batches of any size and rotated tiles reuse the same graph.

    Example:
        >>> from keras_unet import build_unet
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> forward = compiled_forward(model, model_geometry(model))
        >>> forward(np.zeros((3, 44, 60, 1), "float32")).shape
        TensorShape([3, 4, 20, 2])
    """
    forward = _COMPILED.get(model)
    if forward is None:
        ref = weakref.ref(model)
        spec = tf.TensorSpec((None, *geom.input_size, geom.channels), tf.float32)
        forward = tf.function(lambda tiles: ref()(tiles, training=False), input_signature=[spec])
        _COMPILED[model] = forward
    return forward


def reflect_indices(start: int, stop: int, size: int, before: int) -> np.ndarray:
    """Source indices of padded pixels ``[start, stop)`` for mirror padding by ``before``.

    The same indices as ``np.pad(mode="reflect")`` (mirror without repeating the edge pixel), for
    any amount of padding, so bands of a padded image are read without padding all of it.

    Example:
        >>> reflect_indices(0, 8, 4, 2).tolist()
        [2, 1, 0, 1, 2, 3, 2, 1]
    """
    index = np.arange(start - before, stop - before)
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    index = np.mod(index, period)
    return np.where(index > size - 1, period - index, index)


def dihedral(image: np.ndarray, k: int, inverse: bool = False) -> np.ndarray:
    """The ``k``-th of the 8 flips/rotations (axes 0, 1) of an image, or its inverse.

    ``k`` in 0..3 rotates by ``k * 90`` degrees; 4..7 also flip left-right first.

    Example:
        >>> image = np.arange(6).reshape(2, 3)
        >>> all((dihedral(dihedral(image, k), k, inverse=True) == image).all() for k in range(8))
        True
    """
    if inverse:
        image = np.rot90(image, -(k % 4), axes=(0, 1))
        return image[:, ::-1] if k >= 4 else image
    image = image[:, ::-1] if k >= 4 else image
    return np.rot90(image, k % 4, axes=(0, 1))


def check_image(image, channels: int, name: str = "image") -> np.ndarray:
    """Returns ``image`` as a real (H, W, C) array, rejecting shapes and values it cannot take.

    Example:
        >>> check_image(np.zeros((5, 7), "uint8"), 1).shape
        (5, 7, 1)
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] != channels or 0 in image.shape:
        raise ValueError(
            f"{name} has shape {image.shape}, but the model takes (height, width, {channels})"
            + (" or (height, width)" if channels == 1 else "") + " images."
        )
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)
            or image.dtype == bool):
        raise ValueError(f"{name} has dtype {image.dtype}; expected integer or float pixels.")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise ValueError(f"{name} contains NaN or infinite pixels.")
    return image


def predict_normalized(model: keras.Model, read_rows, shape: tuple[int, int], write_rows, *,
                       tile_size=None, batch_size: int = 4, tile_tta: bool = False) -> None:
    """Tiles a normalised image given by a row reader, writing finished output rows as they come.

    The engine behind :func:`predict_tiled` and :func:`keras_unet.streaming.predict_tiff`: only
    one band of tile rows is held at a time.

    Args:
        model: the U-Net.
        read_rows: ``read_rows(rows, cols) -> (len(rows), len(cols), C)`` float32 normalised
            pixels at the given image row and column indices.
        shape: ``(height, width)`` of the image.
        write_rows: ``write_rows(start, probabilities)`` receives consecutive float32 row blocks
            ``(rows, width, K)`` of the result, top to bottom.
        tile_size, batch_size: see :func:`plan_tiles`.
        tile_tta: average each tile over the 8 flips/rotations (square tiles, or models that take
            either orientation).

    Example:
        >>> from keras_unet import build_unet
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> image = np.random.default_rng(0).normal(size=(30, 40, 1)).astype("float32")
        >>> blocks = []
        >>> predict_normalized(model, lambda r, c: image[r][:, c], (30, 40),
        ...                    lambda start, block: blocks.append(block))
        >>> np.concatenate(blocks).shape
        (30, 40, 2)
    """
    geom = model_geometry(model)
    rows, cols, batch = plan_tiles(shape, geom, tile_size, batch_size)
    forward = compiled_forward(model, geom)
    col_index = reflect_indices(0, cols.padded, cols.size, cols.before)
    col_sum = cols.weight_sum()[cols.origin:cols.origin + cols.size, None]
    row_sum = rows.weight_sum()
    keep_rows, keep_cols = len(rows.weights), len(cols.weights)
    tile_weights = (rows.weights[:, None, None] * cols.weights[None, :, None])
    buffer = np.zeros((keep_rows, cols.length, geom.num_classes), np.float32)
    written = 0
    for ky in range(rows.count):
        top = ky * rows.step
        band = read_rows(reflect_indices(top, top + rows.tile, rows.size, rows.before), col_index)
        tiles = [band[:, kx * cols.step:kx * cols.step + cols.tile] for kx in range(cols.count)]
        for first in range(0, cols.count, batch):
            outputs = _run_batch(forward, np.stack(tiles[first:first + batch]), tile_tta)
            for kx, output in enumerate(outputs, start=first):
                left = kx * cols.step
                buffer[:, left:left + keep_cols] += output[:keep_rows, :keep_cols] * tile_weights
        done = top + (rows.step if ky < rows.count - 1 else keep_rows)
        start, stop = max(top, rows.origin), min(done, rows.origin + rows.size)
        if stop > start:
            block = buffer[start - top:stop - top, cols.origin:cols.origin + cols.size]
            write_rows(written, block / (row_sum[start:stop, None, None] * col_sum))
            written += stop - start
        buffer[:keep_rows - rows.step] = buffer[rows.step:] if keep_rows > rows.step else 0
        buffer[max(keep_rows - rows.step, 0):] = 0


def _run_batch(forward, tiles: np.ndarray, tta: bool) -> np.ndarray:
    if not tta:
        return forward(tiles).numpy()
    total = 0.0
    for k in range(8):
        turned = np.stack([dihedral(tile, k) for tile in tiles])
        output = forward(np.ascontiguousarray(turned)).numpy()
        total = total + np.stack([dihedral(out, k, inverse=True) for out in output])
    return total / 8


def predict_tiled(model: keras.Model, image, *, tile_size=None, batch_size: int = 4,
                  tta: bool = False) -> np.ndarray:
    """Class probabilities of an image of any size by overlap-tile prediction.

    The image is normalised over its whole extent, mirrored at the edges by the model's border
    and cut into tiles on the max-pooling grid; for a valid-padding model the result equals the
    prediction of the whole mirror-padded image in one pass (to float precision), with any tile
    size. Tiles of "same"-padding models overlap by a quarter and are blended with linear ramps.

    Args:
        model: a U-Net from :func:`keras_unet.build_unet` (any input size, or a fixed one which
            is then the tile size).
        image: (H, W) or (H, W, C) array of integer or float pixels; H and W are arbitrary.
        tile_size: model input tile size (int or (height, width)); by default the largest that
            keeps one model call within :data:`MEMORY_BUDGET`, fitted to the image.
        batch_size: maximum number of tiles per model call.
        tta: test-time augmentation: average the predictions of the 8 flips/rotations of the
            image (as the paper did for ISBI 2012); the result is then equivariant to them.

    Returns:
        float32 array (H, W, K) of class probabilities.

    Raises:
        ValueError: if the image does not fit the model (channels, shape, dtype, NaN) or the tile
            size is not one the model takes.

    Example:
        >>> from keras_unet import build_unet
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> image = np.random.default_rng(0).integers(0, 255, (37, 53), dtype="uint8")
        >>> probabilities = predict_tiled(model, image, tile_size=64)
        >>> probabilities.shape, probabilities.dtype, bool(np.allclose(probabilities.sum(-1), 1))
        ((37, 53, 2), dtype('float32'), True)
    """
    geom = model_geometry(model)
    image = check_image(image, geom.channels)
    plan_tiles(image.shape[:2], geom, tile_size, batch_size)  # validate before normalising
    normalized = normalize_image(image).numpy()
    if not tta:
        return _predict_array(model, normalized, tile_size, batch_size)
    total = None
    for k in range(8):
        probabilities = _predict_array(model, np.ascontiguousarray(dihedral(normalized, k)),
                                       tile_size, batch_size)
        restored = dihedral(probabilities, k, inverse=True)
        total = restored if total is None else total + restored
    return (total / 8).astype(np.float32)


def _predict_array(model, normalized: np.ndarray, tile_size, batch_size) -> np.ndarray:
    height, width = normalized.shape[:2]
    output = None

    def write(start: int, block: np.ndarray) -> None:
        nonlocal output
        if output is None:
            output = np.empty((height, width, block.shape[-1]), np.float32)
        output[start:start + len(block)] = block

    predict_normalized(model, lambda rows, cols: normalized[rows][:, cols], (height, width),
                       write, tile_size=tile_size, batch_size=batch_size)
    return output


def mask_from_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """8-bit class mask for image files: the argmax class spread over 0..255.

    Two classes give 0/255 (background, cell). Three (background, cell interior, border ring:
    :func:`keras_unet.weight_maps.class_labels`) give the class index mask 0/127/254, in which
    a cell is its 127 interior plus its 254 ring; the cells themselves, one label each, are
    :func:`keras_unet.instances.instance_labels`. One output channel (sigmoid) is thresholded
    at 0.5. Read the class back with ``mask // (255 // (K - 1))``.

    Example:
        >>> p = np.array([[[0.9, 0.1], [0.2, 0.8]]], "float32")
        >>> mask_from_probabilities(p).tolist()
        [[0, 255]]
        >>> mask_from_probabilities(np.eye(3)[[[0, 1, 2]]]).tolist()  # background, cell, border
        [[0, 127, 254]]
    """
    probabilities = np.asarray(probabilities)
    if probabilities.shape[-1] == 1:
        return np.where(probabilities[..., 0] > 0.5, 255, 0).astype(np.uint8)
    classes = np.argmax(probabilities, axis=-1).astype(np.uint8)
    return classes * np.uint8(255 // (probabilities.shape[-1] - 1))
