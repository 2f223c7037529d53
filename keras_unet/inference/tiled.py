"""Overlap-tile prediction of images in memory (Ronneberger et al. 2015, Fig. 2).

The image is normalised once over its whole extent, mirrored at its edges by the model's border
and cut into tiles on the max-pooling grid, so that for a valid-padding model the stitched map
equals the prediction of the whole padded image in one pass (seamless to float precision).
The engine is :mod:`keras_unet.inference.engine`; the network's geometry comes from
:func:`keras_unet.inference.network.model_geometry`.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_unet.errors import InputError
from keras_unet.inference.engine import predict_window
from keras_unet.inference.network import TileNetwork, model_geometry
from keras_unet.inference.plan import tilings
from keras_unet.inference.tta import averaged_image
from keras_unet.normalization import normalize_image


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
