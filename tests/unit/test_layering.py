"""Data flows one way: views never import the adapters."""

from __future__ import annotations

import ast
from pathlib import Path

VIEWS = Path(__file__).resolve().parents[2] / "chatstream" / "views"


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_views_do_not_import_adapters():
    for path in VIEWS.glob("*.py"):
        for name in imported_modules(path):
            assert "adapters" not in name, f"{path.name} imports {name}"


def test_sse_framing_imports_no_flask_store_or_adapter():
    sse = VIEWS.parent / "sse.py"
    assert imported_modules(sse) <= {"__future__", "json", "re", "collections.abc"}
