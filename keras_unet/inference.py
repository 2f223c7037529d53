"""Overlap-tile prediction of images in memory (Ronneberger et al. 2015, Fig. 2).

The image is normalised once over its whole extent, mirrored at its edges by the model's border
and cut into tiles on the max-pooling grid, so that for a valid-padding model the stitched map
equals the prediction of the whole padded image in one pass (seamless to float precision).
The engine is :mod:`keras_unet.tiling`; the network's geometry comes from
:func:`model_geometry`, which also makes ``ModelGeometry`` and ``model_geometry`` importable
from here.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_unet.errors import InputError
from keras_unet.network import ModelGeometry, TileNetwork, model_geometry
from keras_unet.normalization import normalize_image
from keras_unet.test_time_augmentation import averaged_image, dihedral
from keras_unet.tiling import predict_window
from keras_unet.tiling_plan import tilings

__all__ = ["ModelGeometry", "check_image", "dihedral", "mask_from_probabilities",
           "model_geometry", "predict_tiled"]


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
        raise InputError(
            f"{name} has shape {image.shape}, but the model takes (height, width, {channels})"
            + (" or (height, width)" if channels == 1 else "") + " images."
        )
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)
            or image.dtype == bool):
        raise InputError(f"{name} has dtype {image.dtype}; expected integer or float pixels.")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise InputError(f"{name} contains NaN or infinite pixels.")
    return image


def predict_tiled(network: keras.Model | TileNetwork, image, *, tile_size=None,
                  batch_size: int = 4, tta: bool = False) -> np.ndarray:
    """Class probabilities of an image of any size by overlap-tile prediction.

    For a valid-padding model the result equals the prediction of the whole mirror-padded image
    in one pass (to float precision), with any tile size. Tiles of "same"-padding models overlap
    by a quarter and are blended with linear ramps.

    Args:
        network: a U-Net from :func:`keras_unet.build_unet` (any input size, or a fixed one which
            is then the tile size), or any object with ``geometry: ModelGeometry`` and
            ``predict_tiles(tiles) -> probabilities`` (e.g. an ONNX Runtime wrapper).
        image: (H, W) or (H, W, C) array of integer or float pixels; H and W are arbitrary.
        tile_size: model input tile size (int or (height, width)); by default the largest that
            keeps one model call within the memory budget, fitted to the image.
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
    geom = model_geometry(network)
    image = check_image(image, geom.channels)
    tilings(geom, tile_size, batch_size)  # validate before normalising

    def predict(normalized: np.ndarray) -> np.ndarray:
        shape = normalized.shape[:2]
        return predict_window(network, lambda rows, cols: normalized[rows][:, cols], shape,
                              (0, 0, *shape), tile_size=tile_size, batch_size=batch_size)

    normalized = normalize_image(image).numpy()
    return averaged_image(predict, normalized) if tta else predict(normalized)


def mask_from_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Class mask for image files: the argmax class, spread over 0..255 for the cell layouts.

    Two classes give 0/255 (background, cell). Three (background, cell interior, border ring:
    :func:`keras_unet.weight_maps.class_labels`) give the class index mask 0/127/254, in which
    a cell is its 127 interior plus its 254 ring; the cells themselves, one label each, are
    :func:`keras_unet.instances.instance_labels`. One output channel (sigmoid) is thresholded
    at 0.5. Read the class back with ``mask // (255 // (K - 1))``. Four classes or more
    (semantic models) give the class indices themselves, uint8 (uint16 beyond 256 classes).

    Example:
        >>> p = np.array([[[0.9, 0.1], [0.2, 0.8]]], "float32")
        >>> mask_from_probabilities(p).tolist()
        [[0, 255]]
        >>> mask_from_probabilities(np.eye(3)[[[0, 1, 2]]]).tolist()  # background, cell, border
        [[0, 127, 254]]
        >>> mask_from_probabilities(np.eye(5)[[[0, 3, 4]]]).tolist()  # semantic: the indices
        [[0, 3, 4]]
    """
    probabilities = np.asarray(probabilities)
    if probabilities.shape[-1] == 1:
        return np.where(probabilities[..., 0] > 0.5, 255, 0).astype(np.uint8)
    if probabilities.shape[-1] > 3:
        return np.argmax(probabilities, axis=-1).astype(
            np.uint8 if probabilities.shape[-1] <= 256 else np.uint16)
    classes = np.argmax(probabilities, axis=-1).astype(np.uint8)
    return classes * np.uint8(255 // (probabilities.shape[-1] - 1))
