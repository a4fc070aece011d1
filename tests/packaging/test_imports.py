"""Every module of the installed packages imports on the running interpreter.

The same check runs under a second Python version (``scripts/run test-other-python``): a
dependency that lost a module there (pydub's ``audioop`` in Python 3.13) shows up here first.
Modules are found as files, so namespace folders such as ``broadcaster/store`` are walked too.
"""

from __future__ import annotations

import importlib
import importlib.util

import pytest

from tests.conftest import REPO

PACKAGES = ("broadcaster", "channels", "drivers", "audio")


def _module_names() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join(parts))
    return sorted(names)


MODULES = _module_names()
SCRIPTS = [name for name in MODULES if name.endswith(".__main__")]


def test_modules_are_found_in_every_package() -> None:
    assert {"audio.export", "broadcaster.store.db", "channels.webpush.ece", "drivers.rds"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", [name for name in MODULES if name not in SCRIPTS])
def test_module_imports(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no docstring saying its job"


@pytest.mark.parametrize("name", SCRIPTS)
def test_entry_script_compiles(name: str) -> None:
    """``__main__`` modules run when imported: their code is compiled, not run."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None
    assert spec.loader.get_code(name) is not None  # type: ignore[attr-defined]


def test_pydub_measures_with_audioop() -> None:
    """pydub computes levels with ``audioop`` (stdlib up to 3.12, audioop-lts from 3.13)."""
    from pydub import AudioSegment

    segment = AudioSegment(data=b"\x00\x10" * 100, sample_width=2, frame_rate=8000, channels=1)
    assert segment.max == 4096
    assert (segment + 6).max > 8000
