"""The console's modules import one another without a circle, counting imports made inside
functions too (those hide a circle from Python, not from a reader)."""

from __future__ import annotations

import ast
from pathlib import Path

import broadcaster.console

PACKAGE = "broadcaster.console"
DIRECTORY = Path(broadcaster.console.__file__).parent


def _module_of(path: Path) -> str:
    return PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"


def _imports(path: Path, known: set[str]) -> set[str]:
    """The console modules ``path`` imports, anywhere but under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found & known


def _graph() -> dict[str, set[str]]:
    paths = sorted(DIRECTORY.glob("*.py"))
    known = {_module_of(p) for p in paths}
    return {_module_of(p): _imports(p, known) - {_module_of(p)} for p in paths}


def _circle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` (as a path back to its start), or [] if none."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return []
        for target in sorted(graph[module]):
            circle = visit(target, [*path, module])
            if circle:
                return circle
        done.add(module)
        return []

    for module in sorted(graph):
        circle = visit(module, [])
        if circle:
            return circle
    return []


def test_the_finder_sees_a_circle_through_a_function_level_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circle(graph) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set()}) == []


def test_the_console_modules_import_without_a_circle() -> None:
    graph = _graph()
    assert f"{PACKAGE}.web" in graph[f"{PACKAGE}.admin"]  # the graph is read at all
    assert f"{PACKAGE}.admin" in graph[f"{PACKAGE}.app"]
    assert _circle(graph) == []
