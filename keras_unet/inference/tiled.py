"""Overlap-tile prediction of images in memory (Ronneberger et al. 2015, Fig. 2).

The image is normalised once over its whole extent, mirrored at its edges by the model's border
and cut into tiles on the max-pooling grid, so that for a valid-padding model the stitched map
equals the prediction of the whole padded image in one pass (seamless to float precision). A 3D
model predicts volumes the same way, mirrored at their six faces.
The engine is :mod:`keras_unet.inference.engine`; the network's geometry comes from
:func:`keras_unet.inference.network.model_geometry`.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_unet.errors import InputError
from keras_unet.geometry import PREDICTION_BATCH
from keras_unet.inference.engine import predict_window
from keras_unet.inference.network import TileNetwork, model_geometry
from keras_unet.inference.plan import tilings
from keras_unet.inference.tta import averaged_image
from keras_unet.normalization import normalize_image


def check_image(image, channels: int, name: str = "image", ndim: int = 2) -> np.ndarray:
    """Returns ``image`` as a real (H, W, C) array, rejecting shapes and values it cannot take.

    For a 3D model (``ndim=3``) the image is a volume, returned as (D, H, W, C).

    Example:
        >>> check_image(np.zeros((5, 7), "uint8"), 1).shape
        (5, 7, 1)
        >>> check_image(np.zeros((4, 5, 7), "uint8"), 1, ndim=3).shape
        (4, 5, 7, 1)
    """
    image = np.asarray(image)
    if image.ndim == ndim:
        image = image[..., None]
    if image.ndim != ndim + 1 or image.shape[-1] != channels or 0 in image.shape:
        raise InputError(_shape_message(name, image.shape, channels, ndim))
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)
            or image.dtype == bool):
        raise InputError(f"{name} has dtype {image.dtype}; expected integer or float pixels.")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise InputError(f"{name} contains NaN or infinite pixels.")
    return image


def _shape_message(name: str, shape: tuple, channels: int, ndim: int) -> str:
    """Why an image of ``shape`` does not fit a model of ``ndim`` axes and ``channels``."""
    if ndim == 2:
        message = (f"{name} has shape {shape}, but the model takes (height, width, {channels})"
                   + (" or (height, width)" if channels == 1 else "") + " images")
        if len(shape) == 4 or len(shape) == 3 and channels == 1 and shape[-1] > 4:
            message += "; it looks like a volume (z, y, x), which needs a 3D model"
        return message + "."
    message = (f"{name} has shape {shape}, but the model is 3D: it takes (depth, height, width, "
               f"{channels})" + (" or (depth, height, width)" if channels == 1 else "")
               + " volumes")
    if len(shape) <= 2 or len(shape) == 3 and channels > 1:
        message += "; it looks like a 2D image, which needs a 2D model"
    return message + "."


def predict_tiled(network: keras.Model | TileNetwork, image, *, tile_size=None,
                  batch_size: int = PREDICTION_BATCH, tta: bool = False) -> np.ndarray:
    """Class probabilities of an image of any size by overlap-tile prediction.

    For a valid-padding model the result equals the prediction of the whole mirror-padded image
    in one pass (to float precision), with any tile size. Tiles of "same"-padding models overlap
    by a quarter and are blended with linear ramps.

    A 3D U-Net predicts a volume ``(D, H, W[, C])`` the same way: tiles over z, y and x,
    mirrored at the volume's faces, equal to one pass over the whole mirrored volume (volumes
    thinner than one tile included).

    Args:
        network: a U-Net from :func:`keras_unet.build_unet` (any input size, or a fixed one which
            is then the tile size), or any object with ``geometry: ModelGeometry`` and
            ``predict_tiles(tiles) -> probabilities`` (e.g. an ONNX Runtime wrapper).
        image: (H, W) or (H, W, C) array of integer or float pixels; H and W are arbitrary
            (for a 3D model: (D, H, W) or (D, H, W, C)).
        tile_size: model input tile size (int or (height, width)); by default the largest that
            keeps one model call within the memory budget, fitted to the image.
        batch_size: maximum number of tiles per model call.
        tta: test-time augmentation: average the predictions of the 8 flips/rotations of the
            image (as the paper did for ISBI 2012); the result is then equivariant to them. A
            volume: the 16 views of its planes with and without a flip along z.

    Returns:
        float32 array (H, W, K) (a volume's (D, H, W, K)) of class probabilities.

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
    image = check_image(image, geom.channels, ndim=geom.ndim)
    tilings(geom, tile_size, batch_size)  # validate before normalising

    def predict(normalized: np.ndarray) -> np.ndarray:
        shape = normalized.shape[:-1]
        return predict_window(network, lambda *index: normalized[np.ix_(*index)], shape,
                              (0,) * len(shape) + shape, tile_size=tile_size,
                              batch_size=batch_size)

    normalized = normalize_image(image, ndim=geom.ndim).numpy()
    if not tta:
        return predict(normalized)
    return averaged_image(predict, normalized, axes=tuple(range(geom.ndim)))
