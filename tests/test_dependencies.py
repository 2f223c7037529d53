"""A plain install (the base dependencies, no extras) has every package keras_unet imports."""

import ast
import importlib.metadata
import pathlib
import re
import sys

import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _base_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_normal(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0])
            for spec in project["dependencies"]}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_level_modules() -> dict[str, str]:
    """Every top-level module imported anywhere in keras_unet/, with one file importing it."""
    found = {}
    for path in sorted((ROOT / "keras_unet").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_import_of_the_package_is_a_base_dependency():
    base = _base_distributions()
    providers = importlib.metadata.packages_distributions()
    missing = []
    for module, where in _imported_top_level_modules().items():
        if module in sys.stdlib_module_names or module == "keras_unet":
            continue
        distributions = {_normal(name) for name in providers.get(module, [])}
        if not distributions & base:
            missing.append(f"{module} (imported in {where}, from {sorted(distributions)})")
    assert not missing, f"imports not provided by a base dependency: {missing}"


def test_the_distribution_name_is_not_the_other_keras_unet():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _normal(project["name"]) != "keras-unet"  # PyPI's keras-unet is another project
