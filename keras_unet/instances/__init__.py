"""Cells from class probabilities: one label per cell, whole images or block by block.

:func:`instance_labels` is the one step from probabilities to cells that ``unet predict``,
``unet evaluate``, the overlays, TensorBoard's object F1 and the exports' users share;
:func:`blockwise_instance_labels` does it for images too large to label at once. What training
chose for a model (method, ``min_size``) is :mod:`~keras_unet.instances.settings`. Names load on
first use, so the command line reads the settings without SciPy.

Example:
    >>> import numpy as np
    >>> from keras_unet.instances import instance_labels
    >>> probabilities = np.eye(2)[np.array([[0, 1, 1, 0, 1]])]
    >>> instance_labels(probabilities, min_size=0).tolist()
    [[0, 1, 1, 0, 2]]
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "blockwise": ["blockwise_instance_labels"],
        "labels": ["instance_labels"],
        "settings": ["METHODS", "MIN_SIZE", "CellSettings"],
    },
)
