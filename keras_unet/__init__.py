"""keras_unet: the U-Net of Ronneberger et al. (MICCAI 2015) for TensorFlow/Keras 3.

The public face of the package. Build the paper's network, train it with the weighted
cross-entropy and IoU metric, predict images of any size tile by tile, export for TF-Serving.

Example:
    >>> import keras_unet
    >>> model = keras_unet.build_unet((572, 572, 1), 2)
    >>> model.output_shape, keras_unet.output_size(572)
    ((None, 388, 388, 2), 388)
"""

from keras_unet import evaluation, losses, metrics
from keras_unet.geometry import border, output_size, valid_input_size
from keras_unet.inference import predict_tiled
from keras_unet.model import build_unet
from keras_unet.weight_maps import weight_map

__version__ = "0.1.0"

__all__ = [
    "border",
    "build_unet",
    "evaluation",
    "losses",
    "metrics",
    "output_size",
    "predict_tiled",
    "valid_input_size",
    "weight_map",
]
