"""keras_unet: the U-Net of Ronneberger et al. (MICCAI 2015) for TensorFlow/Keras 3.

The public face of the package. Build the paper's network, train it with the weighted
cross-entropy and IoU metric, predict images of any size tile by tile, export for TF-Serving.

Names load on first use (scientific Python's SPEC 1, with ``lazy_loader``), so that ``import
keras_unet`` and ``unet --help`` do not wait for TensorFlow. The Keras classes register
themselves for ``keras.models.load_model`` when they load: at once if Keras is already
imported, else with the first name used from here.

Example:
    >>> import keras_unet
    >>> model = keras_unet.build_unet((572, 572, 1), 2)
    >>> model.output_shape, keras_unet.output_size(572)
    ((None, 388, 388, 2), 388)
"""

import importlib
import sys
from importlib.metadata import version

import lazy_loader

__version__ = version("keras-unet-ronneberger")

KERAS_MODULES = ("layers", "losses", "metrics", "model")
"""The modules whose classes a saved model may name; importing them registers the classes."""

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["evaluation", "instances", "losses", "metrics"],
    submod_attrs={
        "blockwise": ["predict_array"],
        "geometry": ["border", "output_size", "valid_input_size"],
        "inference": ["predict_tiled"],
        "model": ["build_unet"],
        "weight_maps": ["weight_map"],
    },
)

if "keras" in sys.modules:  # the caller already paid for Keras: register the classes now
    for _name in KERAS_MODULES:
        importlib.import_module(f"{__name__}.{_name}")
