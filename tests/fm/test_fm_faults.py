"""FM alerts under faults, through the real core service: a Cancel or Update mid-playback
and before airing, links dropped mid-alert, an encoder down past the alert and across a
restart, one alert per transmitter with and without preemption, and bad input; and, through
the channel itself, a Cancel that comes while the on-air journal is being written."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from broadcaster.cap import MsgType, Severity, Status
from broadcaster.channel import ChannelContext
from broadcaster.config import AudioConfig
from broadcaster.delivery import Target
from broadcaster.errors import RetryableError
from broadcaster.publisher import AudioPublisher
from broadcaster.service import BroadcasterService
from broadcaster.testing.contract import contract_delivery
from channels.fm import FmChannel, FmChannelConfig
from channels.fm.restore import OnAirJournal
from drivers.rds import EncoderState, RdsEncoderSimulator
from tests.core.support import (
    COUNTY,
    OTHER_COUNTY,
    make_alert,
    running,
    wait_for_deliveries,
    wait_until_complete,
)
from tests.fm.conftest import (
    NORMAL,
    TRANSMITTER,
    StateLog,
    fm_config,
    fm_table,
    fm_target,
    players_running,
)


async def _deliveries(service: BroadcasterService, alert_id: str) -> list[dict[str, Any]]:
    return await service.database.run(service.outbox.deliveries, alert_id)


async def _last_detail(service: BroadcasterService, delivery_id: int) -> str:
    events = await service.database.run(service.outbox.events, delivery_id)
    return str(events[-1]["detail"])


def _on_air(state: Any) -> bool:
    return state.ta is True and bool(state.rt)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("msg_type", "marker"), [(MsgType.CANCEL, "CANCELLED: "), (MsgType.UPDATE, "UPDATE: ")]
)
async def test_cancel_or_update_mid_playback_drops_ta_within_a_second(
    tmp_path: Path, sink: Path, simulator: RdsEncoderSimulator, msg_type: MsgType, marker: str
) -> None:
    url = await simulator.start_tcp()
    table = fm_table(sink, {TRANSMITTER: url}, readrate=1.0)
    async with running(fm_config(tmp_path, table)) as service:
        original = make_alert("fm-long")
        submitted = await service.submit(original, origin="test")
        await simulator.wait_for(_on_air, within=10)
        await asyncio.sleep(0.5)  # half a second of audio on air
        loop = asyncio.get_running_loop()
        started = loop.time()
        cancel = make_alert("fm-cancel", msg_type=msg_type, references=[original])
        await service.submit(cancel, origin="test")
        await simulator.wait_for(lambda s: s.ta is False, within=1.0)
        assert loop.time() - started < 1.0
        summary = await wait_until_complete(service, submitted.alert_id, timeout=5)
        (delivery,) = await _deliveries(service, submitted.alert_id)
        detail = await _last_detail(service, delivery["id"])
        killed = [p for p in players_running(sink) if f"{delivery['id']}.wav" in p]
        # the all-clear or the update goes on air next, marked as such
        cancelled = await simulator.wait_for(
            lambda s: _on_air(s) and (s.rt or "").startswith(marker), within=10
        )
    assert summary == {"fm": {"confirmed": 1}}
    assert killed == [], "the player of the cancelled alert is still running"
    assert "stopped (Cancel or Update of alert fm-long)" in detail and "station restored" in detail
    assert cancelled.pty == 31
    assert simulator.state == NORMAL, "stopping the service takes the new message off air"


async def test_link_dropped_mid_alert_reconnects_and_restores(
    tmp_path: Path, sink: Path, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    table = fm_table(sink, {TRANSMITTER: url}, readrate=20.0)
    async with running(fm_config(tmp_path, table)) as service:
        submitted = await service.submit(make_alert("fm-drop"), origin="test")
        await simulator.wait_for(_on_air, within=10)
        await simulator.drop_connections()
        summary = await wait_until_complete(service, submitted.alert_id, timeout=15)
    assert summary == {"fm": {"confirmed": 1}}
    assert simulator.state == NORMAL


async def test_encoder_down_past_the_alert_is_restored_when_it_returns(
    tmp_path: Path, sink: Path, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    assert simulator.tcp_address is not None
    port = simulator.tcp_address[1]
    table = fm_table(sink, {TRANSMITTER: url}, readrate=20.0, reconnect_attempts=1)
    async with running(fm_config(tmp_path, table)) as service:
        submitted = await service.submit(make_alert("fm-down"), origin="test")
        await simulator.wait_for(_on_air, within=10)
        await simulator.stop_tcp()
        summary = await wait_until_complete(service, submitted.alert_id, timeout=15)
        (delivery,) = await _deliveries(service, submitted.alert_id)
        assert simulator.state.ta is True, "the encoder kept TA up while unreachable"
        health = await service.channels["fm"].health()
        # another alert tries the dead encoder until it expires; the restore must go on
        short = await service.submit(make_alert("fm-down-2", expires_in=1), origin="test")
        assert await wait_until_complete(service, short.alert_id, timeout=10) == {
            "fm": {"expired": 1}
        }
        await simulator.start_tcp(port=port)
        await simulator.wait_for(lambda s: s == NORMAL, within=3)
    assert summary == {"fm": {"failed": 1}}
    assert "played" in delivery["last_error"]
    assert not health.ok and health.devices[TRANSMITTER]["restore_pending"]


async def test_one_alert_per_transmitter_and_a_real_alert_preempts_a_test(
    tmp_path: Path, sink: Path, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    table = fm_table(sink, {TRANSMITTER: url}, readrate=1.0, busy_retry_seconds=0.1)
    async with running(fm_config(tmp_path, table)) as service:
        test = await service.submit(make_alert("fm-t1", status=Status.TEST), origin="test")
        await simulator.wait_for(_on_air, within=10)
        second = await service.submit(make_alert("fm-t2", status=Status.TEST), origin="test")
        await service.submit(make_alert("fm-real"), origin="test")
        on_air = await simulator.wait_for(lambda s: _on_air(s) and s.pty == 31, within=10)
        test_summary = await wait_until_complete(service, test.alert_id, timeout=5)
        (preempted,) = await _deliveries(service, test.alert_id)
        (queued,) = await wait_for_deliveries(
            service,
            second.alert_id,
            lambda rows: (
                rows[0]["attempts"] >= 2
                and "is airing alert fm-real" in (rows[0]["last_error"] or "")
            ),
        )
    assert on_air.ps == "ALERT   "
    assert test_summary == {"fm": {"failed": 1}}
    assert "preempted by alert fm-real" in preempted["last_error"]
    assert queued["state"] in ("queued", "sending"), "an equal alert waits its turn"
    assert simulator.state == NORMAL


async def test_a_real_alert_cut_off_by_a_more_severe_one_airs_again_after_it(
    tmp_path: Path, sink: Path, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    table = fm_table(sink, {TRANSMITTER: url}, readrate=8.0, busy_retry_seconds=0.1)
    async with running(fm_config(tmp_path, table)) as service:
        moderate = await service.submit(
            make_alert("fm-moderate", severity=Severity.MODERATE), origin="test"
        )
        await simulator.wait_for(_on_air, within=10)
        extreme = await service.submit(
            make_alert("fm-extreme", severity=Severity.EXTREME), origin="test"
        )
        assert await wait_until_complete(service, extreme.alert_id, timeout=30) == {
            "fm": {"confirmed": 1}
        }
        assert await wait_until_complete(service, moderate.alert_id, timeout=30) == {
            "fm": {"confirmed": 1}
        }
        (delivery,) = await _deliveries(service, moderate.alert_id)
        events = await service.database.run(service.outbox.events, delivery["id"])
    cut = next(e for e in events if "preempted by alert fm-extreme" in (e["detail"] or ""))
    assert (cut["from_state"], cut["to_state"]) == ("accepted", "queued")
    assert [e["to_state"] for e in events][-1] == "confirmed"
    assert delivery["attempts"] >= 2
    assert simulator.state == NORMAL


async def test_bad_input_gives_clear_results_and_the_rest_is_delivered(
    tmp_path: Path, sink: Path, simulator: RdsEncoderSimulator, state_log: StateLog
) -> None:
    url = await simulator.start_tcp()
    dead = f"socket://127.0.0.1:{_closed_port()}"
    encoders = {TRANSMITTER: url, "tx-150922": dead}
    targets = [
        fm_target(),
        fm_target("fm-150922", "tx-150922", OTHER_COUNTY),
        fm_target("fm-unknown", "tx-999999"),
    ]
    headline = (
        "Blizzard warning for Zhuozi: “heavy snow” ~ 30 cm tonight — roads closed, "
        "stay at home and keep warm"
    )
    config = fm_config(tmp_path, fm_table(sink, encoders), targets)
    async with running(config) as service:
        alert = make_alert("fm-bad", geocodes=(COUNTY, OTHER_COUNTY), headline=headline)
        submitted = await service.submit(alert, origin="test")

        def settled(rows: list[dict[str, Any]]) -> bool:
            by_target = {d["target_id"]: d for d in rows}
            return (
                by_target["fm-150921"]["state"] == "confirmed"
                and by_target["fm-unknown"]["state"] == "failed"
                and by_target["fm-150922"]["attempts"] >= 2
            )

        rows = await wait_for_deliveries(service, submitted.alert_id, settled)
        deliveries = {d["target_id"]: d for d in rows}
    _, text, _ = state_log.first(lambda s: s.ta is True and bool(s.rt))
    assert text.rt is not None and len(text.rt) <= 64
    assert text.rt == 'Blizzard warning for Zhuozi: "heavy snow" - 30 cm tonight'
    assert deliveries["fm-150921"]["state"] == "confirmed"
    assert deliveries["fm-unknown"]["state"] == "failed"
    assert "'tx-999999' has no encoder" in deliveries["fm-unknown"]["last_error"]
    unreachable = deliveries["fm-150922"]
    assert unreachable["state"] in ("queued", "sending"), "an unreachable encoder is retried"
    assert "tx-150922" in unreachable["last_error"] and dead in unreachable["last_error"]


async def test_restart_restores_an_encoder_an_earlier_run_left_in_alert_state(
    tmp_path: Path, sink: Path, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    assert simulator.tcp_address is not None
    port = simulator.tcp_address[1]
    table = fm_table(sink, {TRANSMITTER: url}, readrate=1.0, reconnect_attempts=1)
    config = fm_config(tmp_path, table)
    async with running(config) as service:
        await service.submit(make_alert("fm-crash"), origin="test")
        await simulator.wait_for(_on_air, within=10)
        await simulator.stop_tcp()  # the encoder is unreachable while the server stops
    assert simulator.state.ta is True and simulator.state.pty == 31
    journal = config.server.data_dir / "fm-fm" / "on-air"
    (journal / "garbage.json").write_text("{not json", encoding="utf-8")
    await simulator.start_tcp(port=port)
    async with running(config):
        await simulator.wait_for(lambda s: s == NORMAL, within=5)
    assert (journal / "garbage.bad").exists(), "an unreadable journal file is set aside"


async def test_restart_restores_an_encoder_with_the_settings_of_its_configured_url(
    tmp_path: Path, sink: Path
) -> None:
    async with RdsEncoderSimulator(dialect="ascii", initial=NORMAL) as simulator:
        base = await simulator.start_tcp()
        assert simulator.tcp_address is not None
        port = simulator.tcp_address[1]
        url = f"{base}?dialect=ascii"
        table = fm_table(sink, {TRANSMITTER: url}, readrate=1.0, reconnect_attempts=1)
        config = fm_config(tmp_path, table)
        async with running(config) as service:
            await service.submit(make_alert("fm-ascii-crash"), origin="test")
            await simulator.wait_for(_on_air, within=10)
            await simulator.stop_tcp()  # the encoder is unreachable while the server stops
        assert simulator.state.ta is True
        await simulator.start_tcp(port=port)
        journal = config.server.data_dir / "fm-fm" / "on-air"
        async with running(config):
            await simulator.wait_for(lambda s: s.ta is False, within=5)
            # The on-air file goes once the restore is done, a moment after the encoder took it.
            async with asyncio.timeout(5):
                while list(journal.glob("*.json")):
                    await asyncio.sleep(0.02)
        assert list(journal.glob("*.json")) == [], "the restored encoder's on-air file is gone"
    assert simulator.state == NORMAL


async def test_an_alert_cut_off_by_a_server_restart_airs_again_after_it(
    tmp_path: Path, sink: Path, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    config = fm_config(tmp_path, fm_table(sink, {TRANSMITTER: url}, readrate=8.0))
    async with running(config) as service:
        submitted = await service.submit(make_alert("fm-cut"), origin="test")
        await wait_for_deliveries(
            service, submitted.alert_id, lambda rows: rows[0]["state"] == "accepted"
        )
        assert _on_air(simulator.state)
    # The server stopped mid-air; the delivery is still "accepted" in the store.
    async with running(config) as service:
        summary = await wait_until_complete(service, submitted.alert_id, timeout=30)
        (delivery,) = await _deliveries(service, submitted.alert_id)
        events = await service.database.run(service.outbox.events, delivery["id"])
    assert summary == {"fm": {"confirmed": 1}}
    assert any("cut off on air by a server restart" in (e["detail"] or "") for e in events)
    assert simulator.state == NORMAL


async def test_cancel_before_the_alert_is_on_air_keeps_it_off_the_air(
    tmp_path: Path, sink: Path, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    simulator.faults.answer_delay = 0.4  # a slow encoder: the alert is still being raised
    table = fm_table(sink, {TRANSMITTER: f"{url}?ack_timeout=1.0"})
    async with running(fm_config(tmp_path, table)) as service:
        original = make_alert("fm-early")
        submitted = await service.submit(original, origin="test")
        await simulator.wait_for(lambda s: s.ta is True, within=10)
        cancel = make_alert("fm-early-cancel", msg_type=MsgType.CANCEL, references=[original])
        await service.submit(cancel, origin="test")
        summary = await wait_until_complete(service, submitted.alert_id, timeout=10)
        (delivery,) = await _deliveries(service, submitted.alert_id)
    assert summary == {"fm": {"cancelled": 1}}
    assert not (sink / f"{delivery['id']}.wav").exists(), "nothing of it was played"
    assert simulator.state == NORMAL


def _fm_channel(tmp_path: Path, sink: Path, url: str) -> FmChannel:
    audio = AudioPublisher(tmp_path / "audio", AudioConfig(engine_order=("espeak-ng",)))
    context = ChannelContext(
        data_dir=tmp_path, sender_name="测试", public_url="http://127.0.0.1:1", audio=audio
    )
    config = FmChannelConfig.model_validate(fm_table(sink, {TRANSMITTER: url}))
    return FmChannel("fm", config, context)


async def test_a_cancel_while_the_on_air_journal_is_written_keeps_the_alert_off_the_air(
    tmp_path: Path,
    sink: Path,
    simulator: RdsEncoderSimulator,
    state_log: StateLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writing, written = asyncio.Event(), asyncio.Event()
    record = OnAirJournal.record

    async def slow_record(
        journal: OnAirJournal, transmitter: str, url: str, normal: EncoderState, alert: str
    ) -> None:
        writing.set()
        await written.wait()  # a slow disk
        await record(journal, transmitter, url, normal, alert)

    monkeypatch.setattr(OnAirJournal, "record", slow_record)
    channel = _fm_channel(tmp_path, sink, await simulator.start_tcp())
    await channel.start()
    delivery = contract_delivery(
        Target(id="fm-150921", channel="fm", name="tx", address=TRANSMITTER)
    )
    send = asyncio.create_task(channel.send(delivery))
    try:
        await asyncio.wait_for(writing.wait(), 30)
        await channel.cancel(delivery)
        written.set()
        with pytest.raises(RetryableError, match="stopped before airing"):
            await send
    finally:
        written.set()
        await channel.stop()
    assert state_log.changes == [], "the cancelled alert never touched the encoder"
    assert not list(sink.glob("*.wav")), "nothing of it was played"
    assert not list((tmp_path / "fm-fm" / "on-air").glob("*.json")), "no alert is up"


async def test_a_cancel_just_as_the_alert_starts_ends_the_send_and_frees_the_transmitter(
    tmp_path: Path,
    sink: Path,
    simulator: RdsEncoderSimulator,
    state_log: StateLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    channel = _fm_channel(tmp_path, sink, await simulator.start_tcp())
    delivery = contract_delivery(
        Target(id="fm-150921", channel="fm", name="tx", address=TRANSMITTER)
    )
    cancels: list[asyncio.Task[None]] = []
    record = OnAirJournal.record

    async def record_then_cancel(
        journal: OnAirJournal, transmitter: str, url: str, normal: EncoderState, alert: str
    ) -> None:
        await record(journal, transmitter, url, normal, alert)
        # The core's Cancel is due to run right after the alert's own first step is queued.
        cancels.append(asyncio.create_task(channel.cancel(delivery)))

    monkeypatch.setattr(OnAirJournal, "record", record_then_cancel)
    await channel.start()
    try:
        with pytest.raises(RetryableError, match="before going on air"):
            await asyncio.wait_for(channel.send(delivery), 10)
        await asyncio.gather(*cancels)
        health = await channel.health()
    finally:
        await channel.stop()
    assert state_log.changes == [], "the cancelled alert never touched the encoder"
    assert health.devices[TRANSMITTER]["on_air"] is None, "the transmitter is free again"
    assert not list((tmp_path / "fm-fm" / "on-air").glob("*.json")), "no alert is up"


async def test_without_preemption_a_real_alert_waits_for_the_test_on_air(
    tmp_path: Path, sink: Path, simulator: RdsEncoderSimulator
) -> None:
    url = await simulator.start_tcp()
    table = fm_table(sink, {TRANSMITTER: url}, readrate=1.0, busy_retry_seconds=0.1, preempt=False)
    async with running(fm_config(tmp_path, table)) as service:
        await service.submit(make_alert("fm-p1", status=Status.TEST), origin="test")
        await simulator.wait_for(_on_air, within=10)
        real = await service.submit(make_alert("fm-p2"), origin="test")
        (waiting,) = await wait_for_deliveries(
            service, real.alert_id, lambda rows: rows[0]["attempts"] >= 2
        )
        still = simulator.state
    assert "is airing alert fm-p1" in waiting["last_error"]
    assert still.ta is True and still.pty == 30, "the test stayed on air"
    assert simulator.state == NORMAL
