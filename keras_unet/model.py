"""The U-Net of Ronneberger, Fischer and Brox (MICCAI 2015) as a Keras functional model.

Reading :func:`build_unet` top to bottom shows the paper's Fig. 1: a contracting path of
:func:`conv_block` + max-pool levels, a bottleneck, and an expanding path of :func:`up_block`
levels that join the centre-cropped skip connections, then a 1x1 convolution to class scores.
An input with three spatial axes gives the 3D U-Net of Cicek et al. (MICCAI 2016): the same
graph with 3x3x3 convolutions and 2x2x2 poolings, or, for anisotropic voxels, per-axis poolings
and kernels chosen from the spacing (:func:`keras_unet.geometry.anisotropic_pooling`).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import keras

from keras_unet import geometry
from keras_unet.class_layout import ClassLayout
from keras_unet.errors import InputError
from keras_unet.layers import CropToMatch, LinearUpsampling
from keras_unet.scalars import python_int

UPSAMPLINGS = ("transpose", "bilinear")
FINAL_ACTIVATIONS = ("softmax", None)


def _spatial(x) -> int:
    """Spatial axes of a channels-last tensor: 2 (images) or 3 (volumes)."""
    return len(x.shape) - 2


def conv_block(x, filters: int, *, padding: str, batch_norm: bool, name: str, kernel=3):
    """Two 3x3 (3x3x3 for volumes) convolutions, each followed by ReLU (and batch norm if asked).

    ``kernel`` is the kernel size, or one per axis (an anisotropic volume's ``(1, 3, 3)``).

    Example:
        >>> x = keras.Input((20, 20, 1))
        >>> conv_block(x, 8, padding="valid", batch_norm=False, name="level1").shape
        (None, 16, 16, 8)
        >>> conv_block(keras.Input((6, 20, 20, 1)), 8, padding="valid", batch_norm=False,
        ...            name="level1", kernel=(1, 3, 3)).shape
        (None, 6, 16, 16, 8)
    """
    conv = keras.layers.Conv2D if _spatial(x) == 2 else keras.layers.Conv3D
    for i in (1, 2):
        x = conv(
            filters, kernel, padding=padding, use_bias=not batch_norm,
            kernel_initializer="he_normal", name=f"{name}_conv{i}",
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def up_block(x, skip, filters: int, *, padding: str, batch_norm: bool, upsampling: str, name: str,
             factor=2, kernel=3):
    """2x up-convolution halving the channels, concat with the cropped skip, two 3x3 convs.

    ``factor`` is the up-sampling (1 or 2) of each axis of a volume whose level did not pool
    every axis, ``kernel`` the convolutions' kernel (see :func:`conv_block`).

    Example:
        >>> x, skip = keras.Input((6, 6, 16)), keras.Input((16, 16, 8))
        >>> up_block(x, skip, 8, padding="valid", batch_norm=False, upsampling="transpose",
        ...          name="up1").shape  # 6 -> 12 up, skip cropped 16 -> 12, two convs -> 8
        (None, 8, 8, 8)
    """
    volume = _spatial(x) == 3
    if upsampling == "transpose":
        transpose = keras.layers.Conv3DTranspose if volume else keras.layers.Conv2DTranspose
        x = transpose(
            filters, factor, strides=factor, kernel_initializer="he_normal",
            name=f"{name}_upconv"
        )(x)
    else:
        # Keras's UpSampling2D(interpolation="bilinear") fails in a graph of free height and width
        factors = tuple(factor) if isinstance(factor, Sequence) else (factor,) * _spatial(x)
        x = LinearUpsampling(factors, name=f"{name}_upsample")(x)
        x = (keras.layers.Conv3D if volume else keras.layers.Conv2D)(
            filters, factor, padding="same", kernel_initializer="he_normal", name=f"{name}_upconv"
        )(x)
    x = keras.layers.ReLU(name=f"{name}_uprelu")(x)
    if padding == "valid":
        skip = CropToMatch(name=f"{name}_crop")([skip, x])
    x = keras.layers.Concatenate(name=f"{name}_concat")([skip, x])
    return conv_block(x, filters, padding=padding, batch_norm=batch_norm, name=name,
                      kernel=kernel)


@keras.saving.register_keras_serializable(package="keras_unet")
class UNet(keras.Model):
    """The U-Net as a functional model that records the arguments it was built from.

    As keras-hub's models do, :meth:`get_config` returns the construction arguments and
    :meth:`from_config` rebuilds the network from them, so a saved ``.keras`` file says what it
    is (depth, padding, filters, classes, ...) instead of leaving it to be read from its layers.
    It also carries what training chose for turning its output into cells (``cells``, see
    :mod:`keras_unet.instances.settings`), set with :meth:`record_cells`. Build it with
    :func:`build_unet`, which checks the arguments first.

    Example:
        >>> model = UNet((None, None, 1), 2, filters=4, depth=2, class_names=("bg", "fg"))
        >>> model.get_config()["depth"], model.class_names, model.layout.labels
        (2, ('bg', 'fg'), 'instances')
    """

    def __init__(self, input_shape: Sequence[int | None], num_classes: int, *,
                 filters: int = 64, depth: int = 4, padding: str = "valid",
                 batch_norm: bool = False, dropout: float = 0.5, upsampling: str = "transpose",
                 final_activation: str | None = "softmax",
                 class_names: Sequence[str] | None = None, labels: str | None = None,
                 cells: dict | None = None, spacing: Sequence[float] | None = None,
                 pooling: Sequence[Sequence[int]] | None = None,
                 kernel_sizes: Sequence[Sequence[int]] | None = None, name: str = "unet",
                 **kwargs):
        if isinstance(input_shape, Sequence) and not isinstance(input_shape, str):
            input_shape = tuple(python_int(size) for size in input_shape)
        num_classes, filters, depth = (python_int(v) for v in (num_classes, filters, depth))
        sizes, channels = _validate(
            input_shape, num_classes, filters, depth, padding, dropout, upsampling,
            final_activation
        )
        dropout = float(dropout)
        spacing, pooling, kernel_sizes = _layout(len(sizes), depth, spacing, pooling,
                                                 kernel_sizes)
        _validate_sizes(sizes, depth, padding, pooling, kernel_sizes)
        layout = ClassLayout.of(num_classes, labels, class_names)
        inputs = keras.Input((*sizes, channels), name="image")
        outputs = _unet_graph(inputs, num_classes, filters, depth, padding, batch_norm, dropout,
                              upsampling, final_activation, pooling, kernel_sizes)
        super().__init__(inputs, outputs, name=name, **kwargs)
        self.arguments = {
            "input_shape": (*sizes, channels), "num_classes": num_classes,
            "filters": filters, "depth": depth, "padding": padding, "batch_norm": batch_norm,
            "dropout": dropout, "upsampling": upsampling, "final_activation": final_activation,
            "class_names": layout.class_names, "labels": layout.labels,
            "cells": dict(cells) if isinstance(cells, dict) else cells,
        }
        if len(sizes) == 3 or pooling is not None or spacing is not None:
            # Recorded for volumes (and any explicit layout); a 2D model's config stays as
            # keras_unet 0.4 wrote it, so that 0.4 can still load it.
            self.arguments.update({"spacing": spacing, "pooling": pooling,
                                   "kernel_sizes": kernel_sizes})

    @property
    def ndim(self) -> int:
        """Spatial axes: 2 (images) or 3 (volumes)."""
        return len(self.arguments["input_shape"]) - 1

    @property
    def class_names(self) -> tuple[str, ...]:
        """What each output channel means."""
        return self.arguments["class_names"]

    @property
    def layout(self) -> ClassLayout:
        """The class layout: class count, label mode, class names, mask encoding."""
        return ClassLayout(self.arguments["num_classes"], self.arguments["labels"],
                           self.arguments["class_names"])

    def record_cells(self, settings) -> None:
        """Records the cell settings training chose (a
        :class:`keras_unet.instances.settings.CellSettings`); saved with the model.

        Example:
            >>> from keras_unet.instances.settings import CellSettings
            >>> model = UNet((None, None, 1), 2, filters=2, depth=2)
            >>> model.record_cells(CellSettings(min_size=30))
            >>> model.get_config()["cells"]
            {'version': 1, 'method': 'auto', 'min_size': 30}
        """
        self.arguments["cells"] = settings.to_json()

    def get_config(self) -> dict:
        return {"name": self.name, "trainable": self.trainable,
                **{key: _as_lists(value) for key, value in self.arguments.items()}}

    @classmethod
    def from_config(cls, config: dict) -> UNet:
        return cls(**config)


def build_unet(
    input_shape: Sequence[int | None],
    num_classes: int,
    *,
    filters: int = 64,
    depth: int = 4,
    padding: str = "valid",
    batch_norm: bool = False,
    dropout: float = 0.5,
    upsampling: str = "transpose",
    final_activation: str | None = "softmax",
    class_names: Sequence[str] | None = None,
    labels: str | None = None,
    spacing: Sequence[float] | None = None,
    pooling: Sequence[Sequence[int]] | None = None,
    kernel_sizes: Sequence[Sequence[int]] | None = None,
    name: str = "unet",
) -> UNet:
    """Builds the U-Net; the defaults are the network of the paper.

    ``build_unet((572, 572, 1), 2)`` is Fig. 1 of Ronneberger et al. (2015): 23 convolutions
    (3x3 unpadded convs with ReLU, 2x2 max-pools, channels doubling from 64 to 1024, 2x2
    up-convolutions halving them, concatenation with the centre-cropped skip, a final 1x1 conv),
    He-normal initialisation, and dropout at the end of the contracting path (after the deepest
    encoder level and the bottleneck, as in the authors' Caffe model). A 572x572 tile gives a
    388x388 output. The final 1x1 convolution and its activation compute in float32, so the
    outputs are float32 under any mixed-precision policy. The model records these arguments
    (:class:`UNet`), so inference and serving read its geometry from it.

    An ``input_shape`` with three spatial axes, ``(depth, height, width, channels)``, builds the
    3D U-Net of Cicek et al. (MICCAI 2016) with the same options: 3x3x3 convolutions, 2x2x2
    max-pools and up-convolutions. For anisotropic voxels (a confocal stack's z step several
    times its pixel size) give ``spacing``: an axis is then pooled, and convolved across, only
    from the level where its spacing has become comparable to the others'
    (:func:`keras_unet.geometry.anisotropic_pooling`, the rule of nnU-Net). The model records
    the spacing, the per-axis poolings and kernel sizes in its config.

    Args:
        input_shape: ``(height, width, channels)`` or ``(depth, height, width, channels)``; the
            spatial sizes may be ``None``. A fixed size must be one the network can take (see
            :func:`keras_unet.output_size`, :func:`keras_unet.geometry.output_shape`).
        num_classes: number of exclusive classes (>= 2: background and foreground classes).
        filters: channels of the first level (64); level ``i`` has ``filters * 2**i``.
        depth: number of pooling steps (4).
        padding: ``"valid"`` (paper, output smaller than input) or ``"same"`` (output = input).
        batch_norm: add batch normalisation after every 3x3 convolution (not in the paper).
        dropout: dropout rate at the end of the contracting path (0.5); 0 disables it.
        upsampling: ``"transpose"`` (paper's up-convolution) or ``"bilinear"`` (resize + 2x2 conv).
        final_activation: ``"softmax"``, or ``None`` for logits (train with ``from_logits=True``).
        class_names: one name per class; by default
            :func:`keras_unet.class_layout.default_class_names`.
        labels: what the classes are, ``"instances"`` (background, cell[, border]: cells can be
            made of them) or ``"semantic"``; by default cells for 2 or 3 classes.
        spacing: the voxel size per spatial axis (``(z, y, x)``, any one unit); chooses
            ``pooling`` and ``kernel_sizes`` when they are not given, and is recorded (the
            instance step measures distances with it).
        pooling: per level, the pooling factor (1 or 2) of each spatial axis; default 2 on
            every axis, or from ``spacing``.
        kernel_sizes: per level and the bottleneck (``depth + 1`` rows), the kernel size (1 or
            3) of each spatial axis; default 3, or from ``spacing``.
        name: model name.

    Returns:
        A :class:`UNet` (a functional ``keras.Model``) mapping ``(B, H, W, C)`` images (or
        ``(B, D, H, W, C)`` volumes) to ``(B, H', W', num_classes)`` (``(B, D', H', W',
        num_classes)``) float32 class probabilities (or logits).

    Raises:
        ValueError: for a bad argument, naming what was given and what is allowed.

    Example:
        >>> model = build_unet((572, 572, 1), 2)
        >>> model.output_shape, model.class_names
        ((None, 388, 388, 2), ('background', 'cell'))
        >>> conv_types = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)
        >>> sum(isinstance(l, conv_types) for l in model.layers)  # 3x3, up-convs and the 1x1
        23
        >>> build_unet((None, None, 3), 3, filters=8, depth=2, padding="same").output_shape
        (None, None, None, 3)
        >>> volume = build_unet((20, 44, 44, 1), 2, filters=2, depth=2, spacing=(1, 0.5, 0.5))
        >>> volume.output_shape, volume.get_config()["pooling"]
        ((None, 4, 4, 4, 2), [[1, 2, 2], [2, 2, 2]])
    """
    return UNet(input_shape, num_classes, filters=filters, depth=depth, padding=padding,
                batch_norm=batch_norm, dropout=dropout, upsampling=upsampling,
                final_activation=final_activation, class_names=class_names, labels=labels,
                spacing=spacing, pooling=pooling, kernel_sizes=kernel_sizes, name=name)


def _unet_graph(inputs, num_classes: int, filters: int, depth: int, padding: str,
                batch_norm: bool, dropout: float, upsampling: str, final_activation: str | None,
                pooling=None, kernel_sizes=None):
    """The layers of Fig. 1 from ``inputs`` to the class scores.

    Without ``pooling`` and ``kernel_sizes`` every level pools by 2 and convolves by 3 (the
    layers are given the integers, as keras_unet 0.4 gave them); otherwise per axis.
    """
    volume = len(inputs.shape) == 5

    def pool(level):
        return 2 if pooling is None else tuple(pooling[level])

    def kernel(level):
        return 3 if kernel_sizes is None else tuple(kernel_sizes[level])

    x = inputs
    skips = []
    for level in range(depth):
        x = conv_block(x, filters * 2**level, padding=padding, batch_norm=batch_norm,
                       name=f"enc{level + 1}", kernel=kernel(level))
        if level == depth - 1 and dropout:
            x = keras.layers.Dropout(dropout, name=f"enc{level + 1}_dropout")(x)
        skips.append(x)
        max_pool = keras.layers.MaxPooling3D if volume else keras.layers.MaxPooling2D
        x = max_pool(pool(level), name=f"enc{level + 1}_pool")(x)
    x = conv_block(x, filters * 2**depth, padding=padding, batch_norm=batch_norm,
                   name="bottleneck", kernel=kernel(depth))
    if dropout:
        x = keras.layers.Dropout(dropout, name="bottleneck_dropout")(x)
    for level in reversed(range(depth)):
        x = up_block(x, skips[level], filters * 2**level, padding=padding, batch_norm=batch_norm,
                     upsampling=upsampling, name=f"dec{level + 1}", factor=pool(level),
                     kernel=kernel(level))
    return (keras.layers.Conv3D if volume else keras.layers.Conv2D)(
        num_classes, 1, activation=final_activation, kernel_initializer="he_normal",
        dtype="float32", name="final_conv",
    )(x)


def _as_lists(value):
    """Tuples (nested too) as lists, as a JSON config holds them."""
    if isinstance(value, (tuple, list)):
        return [_as_lists(item) for item in value]
    return value


def _layout(ndim: int, depth: int, spacing, pooling, kernel_sizes):
    """``(spacing, pooling, kernel_sizes)`` checked and completed: from the spacing, else the
    paper's 2 and 3 on every axis (``None`` for a 2D model given none of them)."""
    if spacing is not None:
        spacing = geometry.check_spacing(spacing)
        if len(spacing) != ndim:
            raise InputError(f"spacing must have one value per spatial axis ({ndim}), got "
                             f"{spacing!r}.")
    if ndim == 2 and spacing is None and pooling is None and kernel_sizes is None:
        return None, None, None
    if pooling is None and kernel_sizes is None and spacing is not None:
        chosen = geometry.anisotropic_pooling(spacing, depth)
        pooling, kernel_sizes = chosen
    pooling = ((2,) * ndim,) * depth if pooling is None else pooling
    kernel_sizes = ((3,) * ndim,) * (depth + 1) if kernel_sizes is None else kernel_sizes
    try:
        pooling = tuple(tuple(int(v) for v in row) for row in pooling)
        kernel_sizes = tuple(tuple(int(v) for v in row) for row in kernel_sizes)
    except (TypeError, ValueError):
        raise InputError(f"pooling and kernel_sizes must be rows of integers per axis, got "
                         f"{pooling!r} and {kernel_sizes!r}.") from None
    geometry.axis_layouts(ndim, depth, pooling, kernel_sizes)  # checks the shape and values
    if any(max(row) == 1 for row in pooling):
        raise InputError(f"pooling must pool at least one axis at every level, got "
                         f"{pooling!r}.")
    return spacing, pooling, kernel_sizes


def _validate(input_shape, num_classes, filters, depth, padding, dropout, upsampling,
              final_activation):
    if not isinstance(input_shape, Sequence) or len(input_shape) not in (3, 4):
        raise InputError(
            f"input_shape must be (height, width, channels), got {input_shape!r}; for a "
            "grayscale image of any size use (None, None, 1); a volume is (depth, height, "
            "width, channels), e.g. (None, None, None, 1)."
        )
    *sizes, channels = input_shape
    if not isinstance(channels, int) or channels < 1:
        raise InputError(f"input_shape channels must be a positive integer, got {channels!r}.")
    if padding not in geometry.PADDINGS:
        raise InputError(f"padding must be one of {geometry.PADDINGS}, got {padding!r}.")
    if upsampling not in UPSAMPLINGS:
        raise InputError(f"upsampling must be one of {UPSAMPLINGS}, got {upsampling!r}.")
    if final_activation not in FINAL_ACTIVATIONS:
        raise InputError(
            f"final_activation must be one of {FINAL_ACTIVATIONS}, got {final_activation!r}: the "
            "losses and metrics take exclusive classes (softmax probabilities or logits)."
        )
    if not isinstance(depth, int) or depth < 1:
        raise InputError(f"depth must be an integer >= 1, got {depth!r}.")
    if not isinstance(filters, int) or filters < 1:
        raise InputError(f"filters must be a positive integer, got {filters!r}.")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise InputError(
            f"num_classes must be an integer >= 2 (background + foreground), got {num_classes!r}: "
            "a two-class softmax is the sigmoid's equivalent; use num_classes=2."
        )
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise InputError(f"dropout must be a number in [0, 1), got {dropout!r}.")
    for axis, size in zip(AXIS_NAMES[-len(sizes):], sizes):
        if size is not None and not isinstance(size, int):
            raise InputError(f"input_shape {axis} must be an integer or None, got {size!r}.")
    return tuple(sizes), channels


AXIS_NAMES = ("depth", "height", "width")
"""The spatial axes of ``input_shape`` as the messages name them (images: the last two)."""


def _validate_sizes(sizes, depth, padding, pooling, kernel_sizes) -> None:
    """Refuses a fixed input size the network cannot take, naming the axis."""
    layouts = geometry.axis_layouts(len(sizes), depth, pooling, kernel_sizes)
    for axis, size, (pools, kernels) in zip(AXIS_NAMES[-len(sizes):], sizes, layouts):
        if size is None:
            continue
        try:
            geometry.output_size(size, depth, padding, pools=pools, kernels=kernels)
        except ValueError as error:
            raise InputError(f"input_shape {axis}: {error}") from None
