"""Training data: readers for the common layouts, synthetic cells (and volumes of nuclei), and
the tf.data pipeline.

Example:
    >>> from keras_unet.data import synthetic_cells
    >>> [sample] = synthetic_cells(1, size=64)
    >>> sample.image.shape == sample.labels.shape == (64, 64)
    True
"""

import lazy_loader

# Lazy (SPEC 1), so that the synthetic cells and the readers load without TensorFlow, which only
# the tf.data pipeline needs: the napari plugin's sample data comes from here in napari's own
# process, where TensorFlow must never load (keras_unet/napari/model_process.py says why).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={"pipeline": ["fixed_parallelism", "make_dataset"],
                  "readers": ["load_samples", "read_image"],
                  "samples": ["Sample"],
                  "synthetic": ["synthetic_cells", "synthetic_volumes"],
                  "writers": ["save_samples"]},
)
