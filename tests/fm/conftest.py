"""Fixtures for the FM channel tests: encoder simulators, a file sink as the transmitter's
audio input, and configurations for the real core service.

The sink is a real player command: ffmpeg reads the render at ``readrate`` times real time
(so playback takes time, as on air, only shorter) and copies it into ``<sink>/<delivery>.wav``,
which the tests open to check what was played.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from broadcaster.config import AudioConfig, Config
from drivers.rds import EncoderState, RdsEncoderSimulator
from tests.core.support import COUNTY, make_config

#: The simulator's station when no alert is on air (its default) and the FM config for it.
NORMAL = EncoderState(pi=0xC201, ps="BROADCST", rt="", ta=False, tp=True, pty=3)
STATION = {"ps": "BROADCST", "rt": "", "pty": 3, "tp": True}
TRANSMITTER = "tx-150921"


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running (alert sequences, restorers, readers)."""
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leaked, f"tasks left running: {leaked}"


@dataclass
class StateLog:
    """Every on-air change of a simulated encoder, with the sink's files at that moment."""

    sink: Path
    changes: list[tuple[float, EncoderState, tuple[str, ...]]] = field(default_factory=list)

    def record(self, state: EncoderState) -> None:
        played = tuple(sorted(p.name for p in self.sink.glob("*.wav")))
        self.changes.append((asyncio.get_running_loop().time(), state, played))

    def first(self, predicate: Any, start: int = 0) -> tuple[int, EncoderState, tuple[str, ...]]:
        """The first change from ``start`` on whose state matches: index, state, files."""
        for index, (_, state, played) in enumerate(self.changes):
            if index >= start and predicate(state):
                return index, state, played
        raise AssertionError(f"no state matched among {[s.describe() for _, s, _ in self.changes]}")


@pytest.fixture
def sink(tmp_path: Path) -> Path:
    path = tmp_path / "sink"
    path.mkdir()
    return path


@pytest.fixture
def state_log(sink: Path) -> StateLog:
    return StateLog(sink)


@pytest.fixture
async def simulator(state_log: StateLog) -> AsyncIterator[RdsEncoderSimulator]:
    async with RdsEncoderSimulator(initial=NORMAL, on_change=state_log.record) as sim:
        yield sim


def sink_player(sink: Path, readrate: float = 40.0) -> list[str]:
    """A player command that copies each file into ``sink`` at ``readrate`` × real time."""
    return [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-readrate",
        str(readrate),
        "-i",
        "{file}",
        "-c",
        "copy",
        "-y",
        str(sink / "{delivery}.wav"),
    ]


def fm_table(sink: Path, encoders: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """A ``[channels.fm]`` table with the sink player and quick reconnects."""
    table: dict[str, Any] = {
        "type": "fm",
        "encoders": encoders,
        "station": STATION,
        "player": sink_player(sink, settings.pop("readrate", 40.0)),
        "reconnect_delay_seconds": 0.1,
        "restore_retry_seconds": 0.2,
    }
    return table | settings


def fm_target(
    target_id: str = "fm-150921", address: str = TRANSMITTER, county: str = COUNTY
) -> dict[str, Any]:
    return {
        "id": target_id,
        "channel": "fm",
        "name": "卓资县应急广播调频发射台",
        "division": county,
        "lat": 40.894,
        "lon": 112.577,
        "address": address,
    }


def fm_config(
    tmp_path: Path,
    table: dict[str, Any],
    targets: list[dict[str, Any]] | None = None,
    **dispatcher: Any,
) -> Config:
    """A service configuration with the FM channel and offline speech only."""
    config = make_config(tmp_path, {"fm": table}, targets or [fm_target()], **dispatcher)
    return config.model_copy(update={"audio": AudioConfig(engine_order=("espeak-ng",))})


def players_running(sink: Path) -> list[str]:
    """Command lines of processes still writing into ``sink`` (the player under test)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(sink).encode() in arg for arg in args):
            found.append(b" ".join(args).decode(errors="replace"))
    return found


def wav_facts(path: Path) -> tuple[int, int, float]:
    """Sample rate, channels and duration of a WAV file."""
    with wave.open(str(path)) as audio:
        return audio.getframerate(), audio.getnchannels(), audio.getnframes() / audio.getframerate()
