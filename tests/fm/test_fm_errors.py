"""Device errors through the real core service: a refused command fails for good, an encoder
that never acknowledges is retried by the core, a failing player fails the delivery after the
encoder is restored, an encoder whose normal state is unknown is never touched."""

from __future__ import annotations

from pathlib import Path

from broadcaster.delivery import Target
from drivers.rds import RdsEncoderSimulator
from tests.core.support import make_alert, running, wait_until_complete
from tests.fm.conftest import NORMAL, TRANSMITTER, fm_config, fm_table, fm_target


async def test_a_refused_command_fails_the_delivery_and_restores(
    tmp_path: Path, sink: Path, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    async with running(fm_config(tmp_path, fm_table(sink, {TRANSMITTER: url}))) as service:
        simulator.faults.reject = 1
        result = await service.submit(make_alert("fm-nak"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=20)
        (delivery,) = await service.database.run(service.outbox.deliveries, result.alert_id)
    assert summary == {"fm": {"failed": 1}}
    assert delivery["attempts"] == 1
    assert "tx-150921" in delivery["last_error"] and "refused" in delivery["last_error"].lower()
    assert simulator.encoder.negative_answers, "the encoder said no"
    assert simulator.state == NORMAL
    assert not list(sink.glob("*.wav")), "nothing was played"


async def test_an_encoder_that_never_answers_is_retried_by_the_core(
    tmp_path: Path, sink: Path, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    table = fm_table(sink, {TRANSMITTER: f"{url}?ack_timeout=0.2&attempts=2"})
    async with running(fm_config(tmp_path, table)) as service:
        target = Target.from_json(fm_target())
        assert (await service.channels["fm"].probe(target)).ok  # connected, handshake done
        simulator.faults.lose_answers = 2  # every transmission of the alert's first command
        result = await service.submit(make_alert("fm-silent"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=20)
        (delivery,) = await service.database.run(service.outbox.deliveries, result.alert_id)
        events = await service.database.run(service.outbox.events, delivery["id"])
    assert summary == {"fm": {"confirmed": 1}}
    assert delivery["attempts"] == 2
    retried = [e["detail"] for e in events if e["to_state"] == "queued" and e["detail"]]
    assert any("no acknowledgement" in d and "retry in" in d for d in retried), retried
    assert simulator.state == NORMAL


async def test_a_failing_player_fails_the_delivery_after_restoring(
    tmp_path: Path, sink: Path, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    table = fm_table(sink, {TRANSMITTER: url}) | {
        "player": ["ffmpeg", "-v", "error", "-i", "{file}", "-f", "no-such-format", "-"]
    }
    async with running(fm_config(tmp_path, table)) as service:
        result = await service.submit(make_alert("fm-player"), origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=20)
        (delivery,) = await service.database.run(service.outbox.deliveries, result.alert_id)
    assert summary == {"fm": {"failed": 1}}
    assert "FM player 'ffmpeg' exited with" in delivery["last_error"]
    assert any(s.ta for s in simulator.history), "the alert was raised before playing"
    assert simulator.state == NORMAL


async def test_an_ascii_encoder_without_a_configured_station_fails_clearly(
    tmp_path: Path, sink: Path
) -> None:
    async with RdsEncoderSimulator(dialect="ascii", initial=NORMAL) as simulator:
        url = simulator.start_pty() + "?dialect=ascii"
        table = fm_table(sink, {TRANSMITTER: url})
        del table["station"]  # the ASCII dialect cannot read PS back
        async with running(fm_config(tmp_path, table)) as service:
            result = await service.submit(make_alert("fm-ascii"), origin="test")
            summary = await wait_until_complete(service, result.alert_id, timeout=20)
            (delivery,) = await service.database.run(service.outbox.deliveries, result.alert_id)
        history = list(simulator.history)
    assert summary == {"fm": {"failed": 1}}
    assert "normal PS is unknown; set channels.fm.station.ps" in delivery["last_error"]
    assert history == [], "nothing was put on air"
