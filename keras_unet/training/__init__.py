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

import lazy_loader

# Lazy (SPEC 1), so that ``unet train --help`` reads TrainConfig's defaults without TensorFlow.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={"config": ["TrainConfig", "load_config"],
                  "learning_rate": ["CosineDecayOverBudget"],
                  "run": ["TrainResult", "split_samples", "train"],
                  "step_timing": ["measure_seconds_per_step", "plan_steps_per_epoch"],
                  "time_budget": ["TimeBudget"]},
)
