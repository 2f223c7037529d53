"""ARCHITECTURE.md is the map of keras_unet/: every module it names exists, every module is on
it, and the imports keep to the layers it draws."""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keras_unet"
MAP = (ROOT / "ARCHITECTURE.md").read_text()


def _modules() -> set[str]:
    """Every module of the package as a path relative to keras_unet/ (``inference/plan.py``)."""
    return {str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")}


def _named_in_the_map() -> set[str]:
    """The module paths the map's table names: ``a.py``, ``pkg/a.py``, ``pkg/`` + its list."""
    named = set()
    for row in re.findall(r"^\| (.+?) \| (.+?) \|$", MAP, re.M):
        cell, job = row
        for path in re.findall(r"`([\w/]+(?:\.py|/))`", cell):
            named.add(path)
            if path.endswith("/"):  # a package row lists its modules in backticks
                named.update(f"{path}{name}.py" for name in re.findall(r"`(\w+)`", job)
                             if (PACKAGE / path / f"{name}.py").is_file())
    return named


def test_every_module_the_map_names_exists():
    missing = sorted(path for path in _named_in_the_map()
                     if not (PACKAGE / path).exists())
    assert missing == []


def test_every_module_is_on_the_map():
    named = _named_in_the_map()
    unnamed = sorted(module for module in _modules()
                     if module not in named and not module.endswith("__init__.py")
                     and f"{module.rsplit('/', 1)[0]}/" not in named)
    assert unnamed == []


def _imports(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("keras_unet")}


LOWER_LAYERS = {
    # package: what it may not import (the layers drawn above it)
    "io": ("keras_unet.inference", "keras_unet.instances", "keras_unet.evaluation",
           "keras_unet.training", "keras_unet.serving", "keras_unet.cli"),
    "instances": ("keras_unet.evaluation", "keras_unet.training", "keras_unet.serving",
                  "keras_unet.cli"),
    "inference": ("keras_unet.evaluation", "keras_unet.training", "keras_unet.cli"),
    "evaluation": ("keras_unet.training", "keras_unet.serving", "keras_unet.cli"),
    "data": ("keras_unet.inference", "keras_unet.evaluation", "keras_unet.training",
             "keras_unet.serving", "keras_unet.cli"),
    "serving": ("keras_unet.training", "keras_unet.evaluation", "keras_unet.cli"),
    "training": ("keras_unet.cli",),
}


def test_imports_keep_to_the_layers_of_the_map():
    crossing = []
    for package, forbidden in LOWER_LAYERS.items():
        for path in (PACKAGE / package).rglob("*.py"):
            crossing += [f"{path.relative_to(PACKAGE)} imports {name}" for name in _imports(path)
                         if name.startswith(forbidden)]
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    for path in PACKAGE.glob("*.py"):  # the top-level modules sit below every package but io;
        borrowed = ("keras_unet.inference.mirror",) if path.name == "augment.py" else ()
        crossing += [f"{path.name} imports {name}" for name in _imports(path)  # augment mirrors
                     if name.count(".") and name.split(".")[1] in packages - {"io"}
                     and not name.startswith(borrowed)]
    assert crossing == []


def test_only_the_napari_plugin_imports_the_napari_plugin():
    """The library and the command line never depend on the plugin built on them."""
    crossing = [f"{path.relative_to(PACKAGE)} imports {name}"
                for path in PACKAGE.rglob("*.py") if path.relative_to(PACKAGE).parts[0] != "napari"
                for name in _imports(path) if name.startswith("keras_unet.napari")]
    assert crossing == []
