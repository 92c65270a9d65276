"""The core's groups import one way, in pipeline order, and the core never imports the web layer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

# Each group may import from itself and the groups before it, never from those after it.
ORDER = ("errors", "files", "text", "data", "classifier", "dialogue", "training", "learning", "cli")


def imports_of(path: Path) -> list[str]:
    """Return the modules a file imports (inside functions too: a late import is still an arrow)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


def group_of(module: str) -> str | None:
    """Return the core group a dotted module name belongs to (None for the package itself)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "chatbot" and len(parts) > 1 else None


CORE_FILES = sorted((ROOT / "chatbot").rglob("*.py"))


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_a_core_module_imports_only_its_own_group_or_those_before_it(path: Path) -> None:
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    group = group_of(module)
    backwards = [
        imported
        for imported in imports_of(path)
        if group in ORDER
        and group_of(imported) in ORDER
        and ORDER.index(group_of(imported)) > ORDER.index(group)
    ]
    assert not backwards, f"{module} ({group}) imports later groups: {backwards}"
    assert not [name for name in imports_of(path) if name.split(".")[0] in ("app", "flask")]


def test_every_core_group_is_in_the_order() -> None:
    groups = {group_of(".".join(path.relative_to(ROOT).with_suffix("").parts)) for path in CORE_FILES}
    assert groups - {None, "__init__", "__main__", "resources"} <= set(ORDER)


def test_only_fitting_a_model_imports_tensorflow() -> None:
    """Validating, evaluating, reviewing and serving a bot never load TensorFlow: only the module
    that fits the Keras model (and the opt-in Keras engine) imports it."""
    modules = [
        "chatbot.cli",
        "chatbot.training.train",
        "chatbot.training.threshold",
        "chatbot.learning.evaluate",
        "chatbot.classifier.ranker",
        "app",
    ]
    code = "import sys\n" + "".join(f"import {name}\n" for name in modules)
    code += "print(sorted(name for name in ('tensorflow', 'keras') if name in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert loaded.stdout.strip() == "[]"
    fitting = subprocess.run(
        [sys.executable, "-c", "import sys, chatbot.training.fit; print('tensorflow' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert fitting.stdout.strip() == "True"
