"""Training data: readers for the common layouts, synthetic cells (and volumes of nuclei), and
the tf.data pipeline.

Example:
    >>> from keras_unet.data import synthetic_cells
    >>> [sample] = synthetic_cells(1, size=64)
    >>> sample.image.shape == sample.labels.shape == (64, 64)
    True
"""

from keras_unet.data.pipeline import fixed_parallelism, make_dataset
from keras_unet.data.readers import load_samples, read_image
from keras_unet.data.samples import Sample
from keras_unet.data.synthetic import synthetic_cells, synthetic_volumes
from keras_unet.data.writers import save_samples

__all__ = ["Sample", "fixed_parallelism", "load_samples", "make_dataset", "read_image",
           "save_samples", "synthetic_cells", "synthetic_volumes"]
