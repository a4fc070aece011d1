"""FM alerts through the real core service against a simulated encoder over TCP and a pty:
every step acknowledged and checked on the encoder, the audio really played, the station
restored; test alerts use PTY 30; signs in the headline reach the RT and a symbol RDS cannot
show is a warning; a lost ACK and a damaged frame are recovered."""

from __future__ import annotations

import subprocess
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from broadcaster.cap import Status
from broadcaster.service import BroadcasterService
from drivers.rds import EncoderState, RdsEncoderSimulator
from drivers.rds.uecp_frame import AckCode
from tests.core.support import make_alert, running, wait_until_complete
from tests.fm.conftest import (
    NORMAL,
    TRANSMITTER,
    StateLog,
    fm_config,
    fm_table,
    wav_facts,
)


async def _deliveries(service: BroadcasterService, alert_id: str) -> list[dict[str, Any]]:
    return await service.database.run(service.outbox.deliveries, alert_id)


async def _events(service: BroadcasterService, delivery_id: int) -> list[dict[str, Any]]:
    return await service.database.run(service.outbox.events, delivery_id)


def _is_normal(state: EncoderState) -> bool:
    return state == NORMAL


def check_sequence(log: StateLog, sink: Path, delivery_id: int, *, pty: int, ps: str) -> None:
    """The encoder went through raise, text, play, restore, in that order."""
    played = f"{delivery_id}.wav"
    raised_at, raised, played_then = log.first(lambda s: s.ta is True)
    assert raised.pty == pty and raised.tp is True
    assert played not in played_then, "audio started before TA was up"
    text_at, text, played_then = log.first(
        lambda s: s.ta is True and s.ps == ps.ljust(8) and bool(s.rt)
    )
    assert text_at >= raised_at and text.pty == pty
    assert played not in played_then, "audio started before PS and RT were shown"
    down_at, down, played_then = log.first(lambda s: s.ta is False, start=text_at)
    assert down.pty == pty, "TA must drop before the normal PTY returns"
    assert played in played_then, "TA dropped before the audio was played"
    assert down.ps == ps.ljust(8), "TA must drop before the normal PS returns"
    assert log.changes[-1][1] == NORMAL
    assert all(s.ta is False for _, s, _ in log.changes[down_at:])


@pytest.mark.parametrize(
    ("transport", "dialect"), [("tcp", "uecp"), ("pty", "uecp"), ("pty", "ascii")]
)
async def test_whole_sequence_is_acknowledged_played_and_restored(
    tmp_path: Path, sink: Path, state_log: StateLog, transport: str, dialect: str
) -> None:
    async with RdsEncoderSimulator(
        dialect=dialect,  # type: ignore[arg-type]
        initial=NORMAL,
        on_change=state_log.record,
    ) as sim:
        url = await sim.start_tcp() if transport == "tcp" else sim.start_pty()
        url += f"?dialect={dialect}&ack_timeout=0.5"
        config = fm_config(tmp_path, fm_table(sink, {TRANSMITTER: url}))
        async with running(config) as service:
            result = await service.submit(make_alert("fm-1"), origin="test")
            summary = await wait_until_complete(service, result.alert_id, timeout=30)
            (delivery,) = await _deliveries(service, result.alert_id)
            events = await _events(service, delivery["id"])
            health = await service.channels["fm"].health()
    assert summary == {"fm": {"confirmed": 1}}, delivery
    check_sequence(state_log, sink, delivery["id"], pty=31, ps="ALERT")
    assert sim.state == NORMAL
    rate, channels, duration = wav_facts(sink / f"{delivery['id']}.wav")
    assert (rate, channels) == (48000, 1)
    assert duration > 10
    states = [(e["to_state"], e["detail"]) for e in events]
    assert [s for s, _ in states][-3:] == ["accepted", "accepted", "confirmed"]
    accepted, played, confirmed = (d for _, d in states[-3:])
    assert accepted.startswith(f"on air on {TRANSMITTER}: PTY 31, PS 'ALERT', RT 'SNOWSTORM")
    assert played == f"{TRANSMITTER}: played"
    assert "normal state restored" in confirmed
    assert health.ok and health.devices[TRANSMITTER]["on_air"] is None


async def test_uecp_station_state_is_read_back_when_not_configured(
    tmp_path: Path, sink: Path, state_log: StateLog, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    table = fm_table(sink, {TRANSMITTER: url})
    del table["station"]
    async with running(fm_config(tmp_path, table)) as service:
        result = await service.submit(make_alert("fm-read"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
    assert summary == {"fm": {"confirmed": 1}}
    assert simulator.state == NORMAL
    assert state_log.changes[-1][1] == NORMAL


@pytest.mark.parametrize(
    ("status", "ps", "marker"),
    [(Status.TEST, "TEST", "TEST: "), (Status.EXERCISE, "EXERCISE", "EXERCISE: ")],
)
async def test_test_and_exercise_alerts_use_pty_30_and_say_so(
    tmp_path: Path,
    sink: Path,
    state_log: StateLog,
    simulator: RdsEncoderSimulator,
    status: Status,
    ps: str,
    marker: str,
) -> None:
    url = await simulator.start_tcp()
    async with running(fm_config(tmp_path, fm_table(sink, {TRANSMITTER: url}))) as service:
        result = await service.submit(make_alert("fm-test", status=status), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        (delivery,) = await _deliveries(service, result.alert_id)
    assert summary == {"fm": {"confirmed": 1}}
    check_sequence(state_log, sink, delivery["id"], pty=30, ps=ps)
    assert all(s.pty != 31 for _, s, _ in state_log.changes)
    _, text, _ = state_log.first(lambda s: s.ps == ps.ljust(8) and bool(s.rt))
    assert text.rt is not None and text.rt.startswith(marker)
    assert simulator.state == NORMAL


async def test_signs_reach_the_encoder_and_a_symbol_left_out_is_a_warning(
    tmp_path: Path, sink: Path, state_log: StateLog, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    headline = "Cold wave: \u221235 \u00b0C, wind \u2265 20 m/s \u2603"
    async with running(fm_config(tmp_path, fm_table(sink, {TRANSMITTER: url}))) as service:
        result = await service.submit(make_alert("fm-signs", headline=headline), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        (delivery,) = await _deliveries(service, result.alert_id)
    assert summary == {"fm": {"confirmed": 1}}
    _, text, _ = state_log.first(lambda s: s.ta is True and bool(s.rt))
    assert text.rt == "Cold wave: -35 \u00b0C, wind >= 20 m/s"
    assert delivery["warning"] == "RT leaves out what RDS cannot show: '\u2603' (U+2603)"


async def test_lost_ack_is_retransmitted(
    tmp_path: Path, sink: Path, state_log: StateLog, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    simulator.faults.lose_answers = 1
    table = fm_table(sink, {TRANSMITTER: f"{url}?ack_timeout=0.3"})
    async with running(fm_config(tmp_path, table)) as service:
        result = await service.submit(make_alert("fm-lost"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        (delivery,) = await _deliveries(service, result.alert_id)
    assert summary == {"fm": {"confirmed": 1}}
    assert delivery["attempts"] == 1, "the encoder retransmission, not a core retry, recovered"
    sequences = simulator.encoder.sequences_received
    assert len(sequences) > len(set(sequences)), "the unacknowledged frame was sent again"
    check_sequence(state_log, sink, delivery["id"], pty=31, ps="ALERT")


async def test_crc_error_recovers(
    tmp_path: Path, sink: Path, state_log: StateLog, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    simulator.faults.damage_frames = 2
    async with running(fm_config(tmp_path, fm_table(sink, {TRANSMITTER: url}))) as service:
        result = await service.submit(make_alert("fm-crc"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        (delivery,) = await _deliveries(service, result.alert_id)
    assert summary == {"fm": {"confirmed": 1}}
    assert delivery["attempts"] == 1
    assert simulator.encoder.negative_answers.count(int(AckCode.CRC_ERROR)) == 2
    check_sequence(state_log, sink, delivery["id"], pty=31, ps="ALERT")
    assert simulator.state == NORMAL


async def test_same_header_is_played_before_the_warning(
    tmp_path: Path, sink: Path, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    table = fm_table(sink, {TRANSMITTER: url}, same={"enabled": True, "station": "ULCB FM"})
    alert = make_alert("fm-same", expires_in=7200)
    async with running(fm_config(tmp_path, table)) as service:
        result = await service.submit(alert, origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        (delivery,) = await _deliveries(service, result.alert_id)
    assert summary == {"fm": {"confirmed": 1}}
    raw = tmp_path / "played-22k.raw"
    played = sink / f"{delivery['id']}.wav"
    to_22k = ["-f", "s16le", "-ar", "22050", "-ac", "1", str(raw)]
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(played), *to_22k], check=True)
    decoded = subprocess.run(
        ["multimon-ng", "-q", "-t", "raw", "-a", "EAS", str(raw)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    issued = alert.sent.astimezone(UTC).strftime("%j%H%M")
    header = f"ZCZC-CIV-BZW-150921+0200-{issued}-ULCB FM -"
    assert decoded == [f"EAS: {header}", "EAS: NNNN", "EAS: NNNN", "EAS: NNNN"]
