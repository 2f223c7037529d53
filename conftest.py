"""What pytest collects from the checkout (setup.cfg: ``tests`` and ``keras_unet`` with doctests).

The napari widgets import napari, magicgui and Qt, which only the ``napari`` extra installs:
without them their modules are not imported for doctests (they hold none; what runs without a
display is in ``keras_unet/napari/``'s other modules, collected everywhere), and
``tests/test_napari*.py`` skip themselves, saying why.
"""

import importlib.util

NAPARI_EXTRA = ("napari", "magicgui", "qtpy")
"""The packages of the ``napari`` extra that the widget modules import."""

WIDGET_MODULES = ["keras_unet/napari/*widget*.py"]
"""The modules that import them (``segment_widget``, ``finetune_widget``, ``widget_task``)."""

collect_ignore_glob = [] if all(importlib.util.find_spec(name) for name in NAPARI_EXTRA) \
    else WIDGET_MODULES
