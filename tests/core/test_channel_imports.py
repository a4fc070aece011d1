"""Channels import from the core only the public modules the guide lists
(``broadcaster.channel.PUBLIC_MODULES``), so the core can change the rest."""

from __future__ import annotations

import ast
from pathlib import Path

from broadcaster.channel import PUBLIC_MODULES

ROOT = Path(__file__).resolve().parents[2]


def core_imports(source: str) -> set[str]:
    """The ``broadcaster`` modules a module's source imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(n for n in names if n == "broadcaster" or n.startswith("broadcaster."))
    return found


def outside(modules: set[str]) -> set[str]:
    return {m for m in modules if not any(m == p or m.startswith(p + ".") for p in PUBLIC_MODULES)}


def test_channels_import_only_the_public_core() -> None:
    offending = {
        str(path.relative_to(ROOT)): sorted(outside(core_imports(path.read_text("utf-8"))))
        for path in sorted((ROOT / "channels").rglob("*.py"))
    }
    assert {path: found for path, found in offending.items() if found} == {}


def test_the_check_sees_private_imports_and_the_guide_lists_the_public_ones() -> None:
    source = "from broadcaster.dispatcher import Dispatcher\nimport broadcaster.store.db\n"
    assert outside(core_imports(source)) == {"broadcaster.dispatcher", "broadcaster.store.db"}
    assert outside(core_imports("from broadcaster.cap.model import Alert\n")) == set()
    guide = (ROOT / "docs" / "writing-a-channel.md").read_text(encoding="utf-8")
    assert [m for m in PUBLIC_MODULES if f"`{m}" not in guide] == []
