"""The code as a newcomer should find it: rules of the layout that a change could quietly break."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_worker_module_imports_producers() -> None:
    offenders = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "workers").rglob("*.py")
        if any(m == "producers" or m.startswith("producers.") for m in imported_modules(path))
    }
    assert not offenders


def test_case_records_are_enqueued_only_through_workers_enqueue() -> None:
    # message_guard rebuilds a message dramatiq already decoded; that is not an enqueue
    allowed = {"workers/enqueue.py", "workers/message_guard.py"}
    builders = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "workers").rglob("*.py")
        if "dramatiq.Message(" in path.read_text()
    }
    assert builders <= allowed, builders - allowed


def test_stage_modules_go_through_the_store() -> None:
    """A stage reads and writes the system of record through ``workers/store/``, never with
    SQL of its own."""
    from workers.routes import ROUTES

    statements = ("sa.select(", "sa.update(", "sa.insert(", "sa.delete(", "sa.text(", ".insert()")
    for route in ROUTES.values():
        path = ROOT / (route.module.replace(".", "/") + ".py")
        text = path.read_text()
        assert not [s for s in statements if s in text], route.module
