"""The two TF-Serving signatures of an exported U-Net, with their input checks.

``serving_default``
    input ``image``: float32 (batch, height, width, channels), pixels as stored (uint8, uint16
    and float images convert to float32 exactly up to 2**24); outputs ``probabilities``
    (float32 B, H, W, K) and ``labels`` (int32 B, H, W class map).
``encoded``
    input ``image_bytes``: a batch of PNG (8 or 16 bit) or JPEG files of one size (REST:
    ``{"b64": ...}``); outputs ``labels_png_bytes`` (PNG of each mask; the ``_bytes`` suffix
    makes TF-Serving's REST API return it as ``{"b64": ...}``) and ``probabilities``.

Bad inputs stop with an InvalidArgument error naming the limit before any heavy work: a wrong
channel count, an empty image, more than ``max_image_pixels`` pixels per image (read from the
file header for encoded images), NaN or infinite pixels.

A 3D U-Net's export has ``serving_default`` only: ``image`` float32 (batch, depth, height, width,
channels), ``probabilities`` (B, D, H, W, K) and ``labels`` (B, D, H, W); ``max_image_pixels``
then counts voxels (PNG and JPEG hold no volumes).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from keras_unet.inference.network import model_geometry
from keras_unet.serving.codecs import ENCODED_CHANNELS, decode_image, encode_mask_png, image_header
from keras_unet.serving.graph import ServingTiling, class_labels, predict_images

DEFAULT_SIGNATURE = "serving_default"
ENCODED_SIGNATURE = "encoded"
IMAGE_INPUT = "image"
BYTES_INPUT = "image_bytes"
PROBABILITIES_OUTPUT = "probabilities"
"""Every served signature's class probabilities; also the ONNX model's output name."""
LABELS_OUTPUT = "labels"
PNG_OUTPUT = "labels_png_bytes"


def _check_size(height: tf.Tensor, width: tf.Tensor, max_image_pixels: int, name: str) -> list:
    height, width = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
    return [
        tf.debugging.assert_positive(
            tf.stack([height, width]), message=f"{name} must have height and width >= 1"),
        tf.debugging.assert_less_equal(
            height * width, tf.constant(max_image_pixels, tf.int64),
            message=f"{name} has more pixels (height * width) than max_image_pixels = "
                    f"{max_image_pixels} of this export"),
    ]


def checked_images(images: tf.Tensor, channels: int, max_image_pixels: int,
                   ndim: int = 2) -> tf.Tensor:
    """``images`` once its channels, size and values are checked (InvalidArgument otherwise).

    Channels and rank are checked on the data, not on the static shape: TF-Serving feeds
    tensors to the graph without checking them against the signature. ``ndim=3``: a batch of
    volumes (batch, depth, height, width, channels), at most ``max_image_pixels`` voxels each.

    Example:
        >>> checked_images(tf.zeros((1, 4, 4, 3)), 1, 100)
        Traceback (most recent call last):
        ...
        tensorflow.python.framework.errors_impl.InvalidArgumentError: ...image must have 1 channel(s)...
    """  # noqa: E501
    if ndim == 3:
        return _checked_volumes(images, channels, max_image_pixels)
    shape = tf.shape(images, out_type=tf.int64)
    check = tf.debugging.assert_equal(
        tf.size(images, out_type=tf.int64), tf.reduce_prod(shape[:3]) * channels,
        message=f"image must have {channels} channel(s) (batch, height, width, {channels}), "
                "the model's input")
    with tf.control_dependencies([check]):  # then the rank, which the check above assumes
        images = tf.ensure_shape(images, [None, None, None, channels])
    shape = tf.shape(images, out_type=tf.int64)
    checks = [
        tf.debugging.assert_positive(shape[0], message="image must hold at least one image"),
        *_check_size(shape[1], shape[2], max_image_pixels, "image"),
    ]
    with tf.control_dependencies(checks):
        checks = [tf.debugging.assert_all_finite(images, "image has NaN or infinite pixels")]
    with tf.control_dependencies(checks):
        return tf.identity(images)


def _checked_volumes(volumes: tf.Tensor, channels: int, max_voxels: int) -> tf.Tensor:
    """:func:`checked_images` of a batch of volumes."""
    shape = tf.shape(volumes, out_type=tf.int64)
    check = tf.debugging.assert_equal(
        tf.size(volumes, out_type=tf.int64), tf.reduce_prod(shape[:4]) * channels,
        message=f"image must be a batch of volumes (batch, depth, height, width, {channels}), "
                "the model's input")
    with tf.control_dependencies([check]):
        volumes = tf.ensure_shape(volumes, [None, None, None, None, channels])
    shape = tf.shape(volumes, out_type=tf.int64)
    checks = [
        tf.debugging.assert_positive(shape[0], message="image must hold at least one volume"),
        tf.debugging.assert_positive(shape[1:4], message="image must have depth, height and "
                                                         "width >= 1"),
        tf.debugging.assert_less_equal(
            tf.reduce_prod(shape[1:4]), tf.constant(max_voxels, tf.int64),
            message=f"image has more voxels (depth * height * width) than max_image_pixels = "
                    f"{max_voxels} of this export"),
    ]
    with tf.control_dependencies(checks):
        checks = [tf.debugging.assert_all_finite(volumes, "image has NaN or infinite voxels")]
    with tf.control_dependencies(checks):
        return tf.identity(volumes)


def decoded_images(data: tf.Tensor, channels: int, max_image_pixels: int) -> tf.Tensor:
    """A batch of PNG/JPEG files as float32 (B, H, W, channels), checked before decoding.

    Example:
        >>> png = tf.io.encode_png(tf.zeros((3, 5, 1), tf.uint8))
        >>> decoded_images(tf.stack([png, png]), 1, 100).shape
        TensorShape([2, 3, 5, 1])
    """
    sizes = tf.map_fn(image_header, data, fn_output_signature=tf.TensorSpec([2], tf.int32))
    checks = [
        tf.debugging.assert_positive(tf.size(data),
                                     message="image_bytes must hold at least one file"),
    ]
    with tf.control_dependencies(checks):
        checks += _check_size(tf.reduce_max(sizes[:, 0]), tf.reduce_max(sizes[:, 1]),
                              max_image_pixels, "image_bytes")
        checks.append(tf.debugging.assert_equal(
            sizes, tf.broadcast_to(sizes[:1], tf.shape(sizes)),
            message="all image_bytes of one request must have the same height and width; "
                    "send images of other sizes in separate requests"))
    with tf.control_dependencies(checks):
        return tf.map_fn(lambda one: decode_image(one, channels), data,
                         fn_output_signature=tf.TensorSpec([None, None, channels], tf.float32))


def serving_functions(model: keras.Model, tiling: ServingTiling,
                      max_image_pixels: int) -> dict[str, tuple[Callable, list]]:
    """``{signature name: (function, input signature)}`` to add as endpoints of an export.

    ``encoded`` is there for models of 1 or 3 channels (what PNG and JPEG decode to).

    Example:
        >>> from keras_unet import build_unet
        >>> from keras_unet.serving.graph import serving_tiling
        >>> model = build_unet((None, None, 1), 2, filters=4, depth=2)
        >>> functions = serving_functions(model, serving_tiling(model, 64), 10**6)
        >>> serve, spec = functions["serving_default"]
        >>> outputs = serve(tf.zeros((1, 9, 11, 1)))
        >>> outputs["probabilities"].shape, outputs["labels"].dtype
        (TensorShape([1, 9, 11, 2]), tf.int32)
    """
    channels, layout = tiling.channels, model_geometry(model).layout
    ndim = len(tiling.axes)
    image_spec = [None] * (ndim + 1) + [channels]
    # One function both signatures call: the SavedModel holds the tiled network once, and an
    # export traces it once per context instead of once per signature.
    tiled = tf.function(lambda images: predict_images(model, images, tiling), autograph=False,
                        input_signature=[tf.TensorSpec(image_spec, tf.float32)])

    def serve(image):
        probabilities = tiled(checked_images(image, channels, max_image_pixels, ndim))
        return {PROBABILITIES_OUTPUT: probabilities, LABELS_OUTPUT: class_labels(probabilities)}

    def serve_encoded(image_bytes):
        probabilities = tiled(decoded_images(image_bytes, channels, max_image_pixels))
        return {PNG_OUTPUT: encode_mask_png(class_labels(probabilities), layout),
                PROBABILITIES_OUTPUT: probabilities}

    functions = {DEFAULT_SIGNATURE: (serve, [tf.TensorSpec(image_spec, tf.float32,
                                                           name=IMAGE_INPUT)])}
    if channels in ENCODED_CHANNELS and ndim == 2:
        functions[ENCODED_SIGNATURE] = (serve_encoded,
                                        [tf.TensorSpec([None], tf.string, name=BYTES_INPUT)])
    return functions
