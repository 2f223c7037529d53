"""A plain install (the base dependencies, no extras) has every package keras_unet imports, and a
subpackage named after an extra (``keras_unet/napari/``, the ``napari`` extra) may also import
what that extra installs; nothing else may."""

import ast
import importlib.metadata
import pathlib
import re
import sys

import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _distributions(specs) -> set[str]:
    return {_normal(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0]) for spec in specs}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _allowed(path: pathlib.Path) -> set[str]:
    """The distributions a module may import from: the base ones, and for a module inside
    ``keras_unet/<extra>/`` those of that extra too."""
    allowed = _distributions(PROJECT["dependencies"])
    part = path.relative_to(ROOT / "keras_unet").parts[0]
    if part in PROJECT["optional-dependencies"]:
        allowed |= _distributions(PROJECT["optional-dependencies"][part])
    return allowed


def _imports(path: pathlib.Path) -> set[str]:
    """The top-level modules a file imports (absolute imports only)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"keras_unet"}


def _unprovided(paths) -> list[str]:
    providers = importlib.metadata.packages_distributions()
    missing = []
    for path in paths:
        allowed = _allowed(path)
        for module in sorted(_imports(path)):
            # a package that is not installed here (an extra's) is matched by its name
            distributions = {_normal(name) for name in providers.get(module, [module])}
            if not distributions & allowed:
                missing.append(f"{module} (imported in {path.relative_to(ROOT)}, from "
                               f"{sorted(distributions)})")
    return missing


def test_every_import_of_the_package_is_a_base_dependency_or_its_subpackage_extra():
    assert _unprovided(sorted((ROOT / "keras_unet").rglob("*.py"))) == []


def test_the_napari_extra_is_imported_only_by_the_napari_plugin():
    extra_only = (_distributions(PROJECT["optional-dependencies"]["napari"])
                  - _distributions(PROJECT["dependencies"]))
    assert {"napari", "magicgui", "qtpy", "pyqt6"} <= extra_only
    outside = sorted(f"{path.relative_to(ROOT)} imports {module}"
                     for path in (ROOT / "keras_unet").rglob("*.py")
                     if "napari" not in path.relative_to(ROOT / "keras_unet").parts[:1]
                     for module in _imports(path) if _normal(module) in extra_only)
    assert outside == []
    assert any(_imports(path) & {"napari", "magicgui", "qtpy"}
               for path in (ROOT / "keras_unet" / "napari").glob("*.py"))  # the scan sees them


def test_the_distribution_name_is_not_the_other_keras_unet():
    assert _normal(PROJECT["name"]) != "keras-unet"  # PyPI's keras-unet is another project
