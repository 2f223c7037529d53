"""The prediction engine and its entry points: one way to tile, whatever the image and model.

The engine (one implementation each, used by every entry point and traced into the served
graph): :mod:`~keras_unet.inference.plan` (how an axis is cut into tiles),
:mod:`~keras_unet.inference.mirror` (the mirror rule), :mod:`~keras_unet.inference.stitching`
(overlap-add), :mod:`~keras_unet.inference.engine` (any window of an image, one band of tiles
at a time), :mod:`~keras_unet.inference.tta` (the 8 flips/rotations) and
:mod:`~keras_unet.inference.network` (what a network is to the engine).

Entry points: :func:`predict_tiled` (images in memory), :func:`predict_tiff` (TIFFs larger than
memory), :func:`predict_array` (any array-like, block by block), :func:`predict_dask` (the same
blocks as a dask graph), :func:`predict_zarr` (an OME-Zarr store in, one out), and
:func:`load_network`, the one way to open a ``.keras``, SavedModel or ONNX model. Names load on
first use.

Example:
    >>> import numpy as np
    >>> from keras_unet import build_unet
    >>> from keras_unet.inference import predict_tiled
    >>> predict_tiled(build_unet((None, None, 1), 2, filters=4, depth=2), np.zeros((30, 50))).shape
    (30, 50, 2)
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "blockwise": ["predict_array"],
        "dask_graph": ["predict_dask"],
        "engine": ["predict_window"],
        "loading": ["Network", "load_network"],
        "network": ["ModelGeometry", "TileNetwork", "model_geometry"],
        "streaming": ["predict_tiff"],
        "tiled": ["check_image", "predict_tiled"],
        "zarr_prediction": ["predict_zarr"],
    },
)
