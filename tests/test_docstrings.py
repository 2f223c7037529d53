"""Every public function and class of keras_unet has a docstring with a runnable example.

``pytest --doctest-modules`` (setup.cfg) runs the examples that exist; this test makes sure
none is missing, so ``help()`` on anything a user can import shows how to call it.
"""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "keras_unet"


def _public_definitions():
    """(file, node) of every module-level function and class whose name has no underscore."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            if (isinstance(node, (ast.FunctionDef, ast.ClassDef))
                    and not node.name.startswith("_")):
                yield path, node


def _has_runnable_example(node) -> bool:
    docstring = ast.get_docstring(node) or ""
    return "Example" in docstring and ">>>" in docstring


def test_the_scan_sees_the_public_api():
    names = {node.name for _, node in _public_definitions()}
    assert {"build_unet", "predict_tiled", "weight_map", "make_dataset", "train",
            "export_for_serving", "EvaluationReport"} <= names


def test_every_public_function_and_class_has_a_runnable_example():
    missing = [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"
               for path, node in _public_definitions() if not _has_runnable_example(node)]
    assert missing == [], "public definitions without an 'Example:' of '>>>' lines"
