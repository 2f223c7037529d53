"""The napari plugin: segment, correct, fine-tune and segment again where cells are looked at.

napari finds ``napari.yaml`` (an npe2 manifest, named by the ``napari.manifest`` entry point of
the package) without importing anything here. It declares two widgets, *Segment*
(:mod:`~keras_unet.napari.segment_widget`) and *Fine-tune*
(:mod:`~keras_unet.napari.finetune_widget`, which opens *Segment* beside it, so that
``napari --with keras-unet-ronneberger`` shows both), and the synthetic cells as sample data
(:mod:`~keras_unet.napari.sample_data`). The widgets only translate what a person asks for into
one library call each, run in napari's ``thread_worker`` (:mod:`~keras_unet.napari.jobs`):
the cells are those of ``unet predict --instances`` and fine-tuning is ``unet train --init``.
napari, magicgui and Qt come with the ``napari`` extra
(``pip install "keras-unet-ronneberger[napari]"``) and are imported only by the widget
modules; the rest of this package, and all of keras_unet outside it, runs without them.
"""

PLUGIN = "keras-unet-ronneberger"
"""The plugin's name in napari: the manifest's ``name``, the package's distribution name."""
