"""Shared test infrastructure: paths to the CAP corpus in ``tests/data/cap``, a thread-leak check,
and the ``processes`` fixture for tests that start real server processes.

Async leaks (tasks) are checked where services are stopped: see ``tests/core/support.py``.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CAP_DATA = REPO / "tests" / "data" / "cap"
CAP_SAMPLES = CAP_DATA / "samples"
CAP_XSD = CAP_DATA / "CAP-v1.2.xsd"

_ALLOWED_THREAD_PREFIXES = ("asyncio_", "ThreadPoolExecutor", "pydevd", "Dummy")


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves threads of its own running (sqlite workers, readers, servers)."""
    before = _threads()
    yield
    leaked = set()
    for thread in _threads() - before:
        if thread.name.startswith(_ALLOWED_THREAD_PREFIXES):
            continue
        thread.join(timeout=2)
        if thread.is_alive():
            leaked.add(thread.name)
    assert not leaked, f"test leaked threads: {sorted(leaked)}"


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts (crash tests); any still running at its end is killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
