"""The public API of keras_unet has docstrings with runnable examples and no measured figures.

``pytest --doctest-modules`` (setup.cfg) runs the examples that exist; this test makes sure none
is missing on what a user imports from the public modules (their ``__all__``, or the names a
module without one defines). Internal helpers need no example. Measured figures go stale in
docstrings: they belong in ``benchmarks/README.md``.
"""

import ast
import importlib
import inspect
import pathlib
import re

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "keras_unet"
PUBLIC_MODULES = ("keras_unet", "keras_unet.data", "keras_unet.losses", "keras_unet.metrics",
                  "keras_unet.evaluation", "keras_unet.serving", "keras_unet.training")
MEASURED = re.compile(r"\b\d[\d.,]*\s*(ms|img/s|images/s|x faster)\b|\bmeasured\b[^.]*\d", re.I)


def _public_objects():
    """(qualified name, object) of every function and class the public modules export."""
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None) or [
            name for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module_name]
        for name in names:
            value = getattr(module, name)
            if inspect.isfunction(value) or inspect.isclass(value):
                yield f"{module_name}.{name}", value


def _has_runnable_example(value) -> bool:
    docstring = inspect.getdoc(value) or ""
    return "Example" in docstring and ">>>" in docstring


def test_the_scan_sees_the_public_api():
    names = {name.rsplit(".", 1)[1] for name, _ in _public_objects()}
    assert {"build_unet", "predict_tiled", "weight_map", "make_dataset", "train",
            "export_for_serving", "EvaluationReport", "WeightedCrossentropy"} <= names


def test_every_public_function_and_class_has_a_runnable_example():
    missing = sorted(name for name, value in _public_objects() if not _has_runnable_example(value))
    assert missing == [], "public definitions without an 'Example:' of '>>>' lines"


def test_no_docstring_quotes_a_measurement():
    """Figures measured on some machine belong in benchmarks/README.md, where they are dated."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):  # docstrings, and the strings that document constants
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str):
                match = MEASURED.search(node.value.value)
                if match:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} "
                                 f"{match.group(0)!r}")
    assert found == [], "measured figures in docstrings; move them to benchmarks/README.md"
