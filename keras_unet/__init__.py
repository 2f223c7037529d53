"""keras_unet: the U-Net of Ronneberger et al. (MICCAI 2015) for TensorFlow/Keras 3.

The public face of the package. Build the paper's network, train it with the weighted
cross-entropy and IoU metric, predict images of any size tile by tile, turn the probabilities
into cells, export for TF-Serving.

Names load on first use (scientific Python's SPEC 1, with ``lazy_loader``), so that ``import
keras_unet`` and ``unet --help`` do not wait for TensorFlow. The Keras classes a saved model
names register themselves whenever Keras is imported, before or after keras_unet (a
post-import hook, ``wrapt.register_post_import_hook``), so ``keras.models.load_model`` finds
them in any import order.

Example:
    >>> import keras_unet
    >>> model = keras_unet.build_unet((572, 572, 1), 2)
    >>> model.output_shape, keras_unet.output_size(572)
    ((None, 388, 388, 2), 388)
"""

import importlib
from importlib.metadata import version

import lazy_loader
import wrapt

__version__ = version("keras-unet-ronneberger")

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["data", "evaluation", "inference", "instances", "losses", "metrics", "serving",
                "training"],
    submod_attrs={
        "geometry": ["border", "output_size", "valid_input_size"],
        "inference": ["load_network", "predict_array", "predict_tiff", "predict_tiled"],
        "instances": ["instance_labels"],
        "model": ["build_unet"],
        "weight_maps": ["weight_map"],
    },
)

_KERAS_MODULES = ("layers", "losses", "metrics", "model")
"""The modules whose classes a saved model may name; importing them registers the classes."""


def _register_keras_classes(keras_module=None) -> None:
    for name in _KERAS_MODULES:
        importlib.import_module(f"{__name__}.{name}")


wrapt.register_post_import_hook(_register_keras_classes, "keras")
