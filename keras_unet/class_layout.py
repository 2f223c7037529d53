"""The classes a cell model predicts, for every module that makes or reads them.

Class 0 is background and class 1 cell; a 3-class model adds class 2, the border ring of each
cell where it touches another cell or the background (:func:`keras_unet.weight_maps.class_labels`
draws it). Kept apart from the NumPy/SciPy code so that the command line can check a config
without loading SciPy.

Example:
    >>> NUM_CLASSES, CLASS_NAMES[3]
    ((2, 3), ('background', 'cell', 'border'))
"""

NUM_CLASSES = (2, 3)
"""Class layouts derived from instance labels: background/cell, or background/cell/border."""

CLASS_NAMES = {2: ("background", "cell"), 3: ("background", "cell", "border")}
"""What each class index means, per layout."""
