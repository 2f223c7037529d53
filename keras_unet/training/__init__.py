"""Training: ``train(config)`` with tf.distribute, mixed precision, TensorBoard and resume.

``keras_unet.training.train`` is what ``unet train`` runs. A run is described by a
:class:`TrainConfig` (YAML files in the repository's ``training/`` folder), distributed by
:mod:`~keras_unet.training.distribution`, watched by the callbacks of
:mod:`~keras_unet.training.callbacks` and written to the folder of
:mod:`~keras_unet.training.run_dir`.

Example:
    >>> from keras_unet.training import TrainConfig
    >>> TrainConfig(optimizer="adam", learning_rate=1e-3).optimizer
    'adam'
"""

from keras_unet.training.config import TrainConfig, load_config
from keras_unet.training.run import TrainResult, split_samples, train

__all__ = ["TrainConfig", "TrainResult", "load_config", "split_samples", "train"]
