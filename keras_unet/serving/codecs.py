"""PNG and JPEG bytes in and out of the served graph, with the image size read before decoding.

TF-Serving's REST API sends binary inputs as ``{"b64": ...}`` and returns string outputs whose
name ends in ``_bytes`` the same way. A small compressed file can hold a huge image, so the
height and width are read from the file header (PNG ``IHDR``, JPEG ``SOF``) and checked against
the pixel limit before anything is decoded.
"""

from __future__ import annotations

import tensorflow as tf

from keras_unet.class_layout import ClassLayout
from keras_unet.errors import InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ENCODED_CHANNELS = (1, 3)
"""Channel counts both PNG and JPEG decode to (grey, RGB)."""


def _png_header(data: tf.Tensor) -> tf.Tensor:
    """(height, width, bit depth) from the IHDR chunk; zeros for a truncated file."""
    head = tf.strings.substr(data, 0, 25) + tf.constant(b"\0" * 25)
    fields = tf.cast(tf.io.decode_raw(tf.strings.substr(head, 16, 9), tf.uint8), tf.int32)
    width = ((fields[0] * 256 + fields[1]) * 256 + fields[2]) * 256 + fields[3]
    height = ((fields[4] * 256 + fields[5]) * 256 + fields[6]) * 256 + fields[7]
    return tf.stack([height, width, fields[8]])


def image_header(data: tf.Tensor) -> tf.Tensor:
    """int32 ``(height, width)`` of one PNG or JPEG file, read from its header only.

    Raises:
        tf.errors.InvalidArgumentError: for bytes that are neither PNG nor JPEG.

    Example:
        >>> png = tf.io.encode_png(tf.zeros((3, 5, 1), tf.uint8))
        >>> image_header(png).numpy().tolist()
        [3, 5]
    """
    is_jpeg = tf.io.is_jpeg(data)
    is_png = tf.equal(tf.strings.substr(data, 0, len(PNG_SIGNATURE)), PNG_SIGNATURE)
    check = tf.debugging.Assert(tf.logical_or(is_jpeg, is_png), [
        "image_bytes must hold a PNG or JPEG file; got bytes starting with",
        tf.strings.substr(data, 0, 8)])
    with tf.control_dependencies([check]):
        return tf.cond(is_jpeg, lambda: tf.io.extract_jpeg_shape(data)[:2],
                       lambda: _png_header(data)[:2])


def decode_image(data: tf.Tensor, channels: int) -> tf.Tensor:
    """float32 (H, W, channels) pixels of a PNG (8 or 16 bit) or JPEG, values as stored.

    Colour files are converted to grey for one channel and grey ones to RGB for three, as
    ``tf.io.decode_png`` / ``decode_jpeg`` do.

    Example:
        >>> png = tf.io.encode_png(tf.constant([[[0], [65535]]], tf.uint16))
        >>> decode_image(png, 1)[..., 0].numpy().tolist()
        [[0.0, 65535.0]]
    """
    if channels not in ENCODED_CHANNELS:
        raise InputError(f"PNG/JPEG inputs decode to {ENCODED_CHANNELS} channels, not "
                         f"{channels}.")

    def png():
        sixteen = tf.equal(_png_header(data)[2], 16)
        return tf.cond(sixteen,
                       lambda: tf.cast(tf.io.decode_png(data, channels, tf.uint16), tf.float32),
                       lambda: tf.cast(tf.io.decode_png(data, channels, tf.uint8), tf.float32))

    image = tf.cond(tf.io.is_jpeg(data),
                    lambda: tf.cast(tf.io.decode_jpeg(data, channels), tf.float32), png)
    image.set_shape([None, None, channels])
    return image


def encode_mask_png(labels: tf.Tensor, layout: ClassLayout) -> tf.Tensor:
    """PNG of each (H, W) class map in a batch, the mask ``unet predict`` writes.

    The values are :meth:`keras_unet.class_layout.ClassLayout.encode`'s (0/255, 0/127/254, or
    the class indices: an 8-bit grey PNG up to 256 classes, 16-bit beyond); read the classes
    back with :meth:`~keras_unet.class_layout.ClassLayout.decode`. TensorFlow writes no palette
    PNGs; ``unet predict`` adds the palette to its files.

    Example:
        >>> png = encode_mask_png(tf.constant([[[0, 1]]]), ClassLayout.of(2))[0]
        >>> tf.io.decode_png(png)[..., 0].numpy().tolist()
        [[0, 255]]
        >>> png = encode_mask_png(tf.constant([[[0, 3, 4]]]), ClassLayout.of(5))[0]
        >>> tf.io.decode_png(png)[..., 0].numpy().tolist()
        [[0, 3, 4]]
    """
    mask = tf.cast(labels * layout.mask_scale, tf.as_dtype(layout.mask_dtype))[..., None]
    return tf.map_fn(tf.io.encode_png, mask, fn_output_signature=tf.string)
