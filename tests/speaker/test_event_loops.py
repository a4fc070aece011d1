"""The simulators' choice of event loop (drivers/speaker/event_loops.py)."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from drivers.speaker import event_loops
from drivers.speaker.simulator_cli import main as simulator_main
from drivers.speaker.simulator_lean_cli import main as lean_main


def without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return None if name == "uvloop" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_auto_takes_uvloop_when_installed_and_the_standard_loop_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert event_loops.loop_name("auto") == "uvloop"
    assert event_loops.loop_name("asyncio") == "asyncio"
    without_uvloop(monkeypatch)
    assert event_loops.loop_name("auto") == "asyncio"
    with pytest.raises(ValueError, match="uvloop is not installed"):
        event_loops.loop_name("uvloop")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_run_runs_the_coroutine_on_the_loop_named(loop: str) -> None:
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    ran_on = event_loops.run(which(), loop)
    assert ran_on.startswith("uvloop") if loop == "uvloop" else ran_on.startswith("asyncio")


@pytest.mark.parametrize("main", [simulator_main, lean_main])
def test_a_simulator_asked_for_a_missing_uvloop_says_so_and_starts_nothing(
    main, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    without_uvloop(monkeypatch)
    argv = ["--link", "tcp://127.0.0.1:9", "--fleet-secret", "00" * 16, "--loop", "uvloop"]
    assert main(argv) == 2
    assert "uvloop is not installed" in capsys.readouterr().err
