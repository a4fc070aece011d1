"""The loudspeaker channel end to end, over each transport: an alert submitted to the real
service plays on every box of its area and on no other, the boxes download the rendered audio
from the server over HTTP, and their acks confirm the deliveries; a box restarted mid-alert
finishes once; a failed download plays the stored clip; a Cancel stops playback within a
second, and on a box away at the Cancel once it is back; an emergency preempts a running
test."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from broadcaster.cap import MsgType, Status
from broadcaster.delivery import Target
from broadcaster.service import BroadcasterService
from channels.loudspeaker.commands import alert_key
from drivers.speaker import AckStage, BoxAck, HubEvent, SpeakerHub
from tests.core.support import make_alert, wait_for_deliveries, wait_until_complete
from tests.loudspeaker.conftest import speaker_system


async def deliveries(service: BroadcasterService, alert_id: str) -> list[dict[str, Any]]:
    return await service.database.run(service.outbox.deliveries, alert_id)


async def details(service: BroadcasterService, delivery_id: int) -> list[str]:
    events = await service.database.run(service.outbox.events, delivery_id)
    return [str(e["detail"]) for e in events]


async def test_an_alert_plays_on_every_box_of_its_area_and_on_no_other(
    tmp_path: Path, transport: str
) -> None:
    async with speaker_system(tmp_path, transport) as system:
        alert = make_alert(f"area-{transport}")
        result = await system.service.submit(alert, origin="test")
        assert result.planned == {"loudspeaker": 3}
        summary = await wait_until_complete(system.service, result.alert_id, timeout=40)
        assert summary == {"loudspeaker": {"confirmed": 3}}
        assert system.played(alert_key(alert)) == dict.fromkeys(system.county_boxes, 1)
        rows = await deliveries(system.service, result.alert_id)
        steps = await details(system.service, rows[0]["id"])
        assert any(s.startswith("sent to box") for s in steps)
        assert not any(s.endswith(" accepted") for s in steps)  # the box is not asked for it
        assert any(s.startswith("playing on box") and "(url)" in s for s in steps)
        assert any(s.startswith("played on box") for s in steps)
        records = system.fleet.log.completed(alert_id=alert_key(alert))
        assert {r.request.source for r in records} == {"url"}
        assert {r.request.priority for r in records} == {100}
        health = await system.channel.health()
        assert health.ok and health.detail.startswith("5 of 5 boxes online")


async def test_boxes_that_predate_the_acks_member_still_settle_their_deliveries(
    tmp_path: Path,
) -> None:
    async with speaker_system(tmp_path, "mqtt", ignore_acks=True) as system:
        alert = make_alert("old-boxes")
        result = await system.service.submit(alert, origin="test")
        summary = await wait_until_complete(system.service, result.alert_id, timeout=40)
        assert summary == {"loudspeaker": {"confirmed": 3}}
        assert system.played(alert_key(alert)) == dict.fromkeys(system.county_boxes, 1)
        for row in await deliveries(system.service, result.alert_id):
            steps = await details(system.service, row["id"])
            assert any(s.endswith(" accepted") for s in steps)  # their word, every stage
            assert any(s.startswith("played on box") for s in steps)


async def test_a_box_restarted_mid_alert_finishes_it_once(tmp_path: Path) -> None:
    async with speaker_system(tmp_path, play_seconds=1.0) as system:
        alert = make_alert("restart")
        key = alert_key(alert)
        result = await system.service.submit(alert, origin="test")
        await system.wait_playing(key, system.county_boxes)
        restarted = sorted(system.county_boxes)[0]
        await system.fleet.restart(restarted)
        summary = await wait_until_complete(system.service, result.alert_id, timeout=30)
        assert summary == {"loudspeaker": {"confirmed": 3}}
        assert system.played(key) == dict.fromkeys(system.county_boxes, 1)
        cut_off = [
            r
            for r in system.fleet.log.records
            if r.request.box_id == restarted and r.request.alert_id == key and r.interrupted
        ]
        assert len(cut_off) == 1


async def test_a_failed_download_plays_the_stored_clip(tmp_path: Path) -> None:
    # The boxes are told a server address where nothing listens.
    async with speaker_system(tmp_path, public_url="http://127.0.0.1:9") as system:
        alert = make_alert("no-download")
        result = await system.service.submit(alert, origin="test")
        summary = await wait_until_complete(system.service, result.alert_id, timeout=60)
        assert summary == {"loudspeaker": {"confirmed": 3}}
        records = system.fleet.log.completed(alert_id=alert_key(alert))
        assert {r.request.source for r in records} == {"fallback:generic"}
        rows = await deliveries(system.service, result.alert_id)
        steps = await details(system.service, rows[0]["id"])
        assert any("download_failed" in s for s in steps)


async def test_a_cancel_stops_playback_within_a_second(tmp_path: Path, transport: str) -> None:
    """The boxes' ``stopped`` failures settle the deliveries; the ``stop`` itself asks its
    boxes for no acknowledgement, so none comes back."""
    async with speaker_system(tmp_path, transport, play_seconds=60.0) as system:
        acks: list[BoxAck] = []
        handler = system.channel._on_event

        def on_event(event: HubEvent) -> None:
            if isinstance(event, BoxAck):
                acks.append(event)
            handler(event)

        system.channel._on_event = on_event  # type: ignore[method-assign]
        alert = make_alert(f"cancel-{transport}")
        key = alert_key(alert)
        result = await system.service.submit(alert, origin="test")
        await system.wait_playing(key, system.county_boxes, within_s=40)
        cancel = make_alert(f"cancel-{transport}-c", msg_type=MsgType.CANCEL, references=[alert])
        began = time.monotonic()
        await system.service.submit(cancel, origin="test")
        await system.wait_stopped(key, within_s=5)
        assert time.monotonic() - began < 1.0
        summary = await wait_until_complete(system.service, result.alert_id, timeout=10)
        assert summary == {"loudspeaker": {"confirmed": 3}}
        rows = await deliveries(system.service, result.alert_id)
        for row in rows:
            assert "stopped on box" in (await details(system.service, row["id"]))[-1]
        assert system.played(key) == {}
    stopped = [a for a in acks if a.stage is AckStage.FAILED and a.reason == "stopped"]
    assert {a.box_id for a in stopped} == set(system.county_boxes)
    assert [a for a in acks if a.cmd_id.startswith("stop-")] == []


async def test_an_emergency_preempts_a_running_test(tmp_path: Path) -> None:
    async with speaker_system(tmp_path, play_seconds=60.0) as system:
        drill = make_alert("drill", status=Status.TEST, headline="卓资县应急广播测试")
        drill_key = alert_key(drill)
        drill_result = await system.service.submit(drill, origin="test")
        await system.wait_playing(drill_key, system.county_boxes, within_s=40)
        records = [r for r in system.fleet.log.records if r.request.alert_id == drill_key]
        assert {r.request.priority for r in records} == {20}
        system.fleet.set_play_seconds(0.05)
        real = make_alert("real")
        real_result = await system.service.submit(real, origin="test")
        summary = await wait_until_complete(system.service, real_result.alert_id, timeout=40)
        assert summary == {"loudspeaker": {"confirmed": 3}}
        assert system.played(alert_key(real)) == dict.fromkeys(system.county_boxes, 1)
        drill_summary = await wait_until_complete(system.service, drill_result.alert_id)
        assert drill_summary == {"loudspeaker": {"failed": 3}}
        rows = await deliveries(system.service, drill_result.alert_id)
        assert all("preempted" in str(r["last_error"]) for r in rows)
        assert system.played(drill_key) == {}


async def test_an_offline_box_is_retried_until_it_comes_back(tmp_path: Path) -> None:
    async with speaker_system(tmp_path, offline_retry_seconds=0.3) as system:
        absent = sorted(system.county_boxes)[0]
        await system.fleet.box(absent).stop()
        await system.channel.wait_online([absent], within_s=10, online=False)
        probe = await system.channel.probe(_target_of(absent))
        assert not probe.ok and "offline" in probe.detail
        alert = make_alert("offline")
        result = await system.service.submit(alert, origin="test")
        await _until_attempted(system.service, result.alert_id, absent)
        others = system.county_boxes - {absent}
        await system.fleet.log.wait_for(
            lambda _: system.played(alert_key(alert)).keys() == others, within_s=20
        )
        await system.fleet.restart(absent)
        summary = await wait_until_complete(system.service, result.alert_id, timeout=20)
        assert summary == {"loudspeaker": {"confirmed": 3}}
        assert system.played(alert_key(alert)) == dict.fromkeys(system.county_boxes, 1)


async def test_a_box_coming_back_is_retried_at_once_not_after_its_backoff(
    tmp_path: Path,
) -> None:
    async with speaker_system(tmp_path, offline_retry_seconds=120) as system:
        absent = sorted(system.county_boxes)[0]
        await system.fleet.box(absent).stop()
        await system.channel.wait_online([absent], within_s=10, online=False)
        alert = make_alert("back")
        result = await system.service.submit(alert, origin="test")
        await _until_attempted(system.service, result.alert_id, absent)
        await system.fleet.restart(absent)
        # the retry waits 120 s by backoff; the box's return brings it forward
        summary = await wait_until_complete(system.service, result.alert_id, timeout=15)
        assert summary == {"loudspeaker": {"confirmed": 3}}


def _target_of(box_id: str) -> Target:
    return Target(id=f"spk-{box_id[4:]}", channel="loudspeaker", name=box_id, address=box_id)


async def _until_attempted(service: BroadcasterService, alert_id: str, box_id: str) -> None:
    changed = asyncio.Event()
    unsubscribe = service.subscribe(changed.set)
    try:
        async with asyncio.timeout(20):
            while True:
                changed.clear()
                rows = await deliveries(service, alert_id)
                if any(
                    r["target_id"].endswith(box_id[4:]) and "offline" in str(r["last_error"])
                    for r in rows
                ):
                    return
                await changed.wait()
    finally:
        unsubscribe()


@pytest.mark.parametrize("away_s", [0.0, 3.0])
async def test_what_boxes_finish_while_the_server_restarts_is_confirmed_after_it(
    tmp_path: Path, transport: str, away_s: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long confirmation timeout: the confirmations must come from the boxes' acks. Away
    # longer than the playback, the boxes' acks wait at the broker for the hub's session,
    # which hands them over while the hub starts, before the channel listens.
    starts: list[SpeakerHub] = []
    start = SpeakerHub.start

    async def start_later(hub: SpeakerHub) -> None:
        starts.append(hub)
        if len(starts) > 1:
            await asyncio.sleep(away_s)
        await start(hub)

    monkeypatch.setattr(SpeakerHub, "start", start_later)
    settings: dict[str, Any] = {"play_seconds": 1.5, "confirm_timeout_seconds": 600}
    async with speaker_system(tmp_path, transport, **settings) as system:
        alert = make_alert("across-restart")
        key = alert_key(alert)
        result = await system.service.submit(alert, origin="test")
        await system.wait_playing(key, system.county_boxes)
        await system.restart()  # the boxes finish while the server is away
        rows = await wait_for_deliveries(
            system.service,
            result.alert_id,
            lambda rows: all(r["state"] == "confirmed" for r in rows),
            timeout=20,
        )
        assert len(rows) == 3
        assert system.played(key) == dict.fromkeys(system.county_boxes, 1)


async def test_a_renewed_hub_session_sends_nothing_again_to_boxes_that_never_left(
    tmp_path: Path,
) -> None:
    """The hub's broker session drops: the boxes' retained hellos come back on resubscribing,
    which is not news of the boxes. Their unconfirmed deliveries are not sent again; a box
    that does reconnect gets what it did not confirm at once."""
    settings: dict[str, Any] = {"play_seconds": 3.0, "confirm_timeout_seconds": 600}
    async with speaker_system(tmp_path, "mqtt", **settings) as system:
        alert = make_alert("session-renewed")
        key = alert_key(alert)
        result = await system.service.submit(alert, origin="test")
        await system.wait_playing(key, system.county_boxes)
        hub = system.channel.hub
        assert hub is not None and hub._mqtt is not None
        client = hub._mqtt._client
        assert client is not None
        client.abort()
        await system.channel.wait_online(sorted(system.county_boxes), within_s=10, online=False)
        await system.channel.wait_online(sorted(system.county_boxes), within_s=10)
        rows = await wait_for_deliveries(
            system.service,
            result.alert_id,
            lambda rows: all(r["state"] == "confirmed" for r in rows),
            timeout=20,
        )
        for row in rows:
            steps = await details(system.service, row["id"])
            assert not any("sent again" in d for d in steps), steps
        assert system.played(key) == dict.fromkeys(system.county_boxes, 1)


@pytest.mark.parametrize("over", ["tcp", "mqtt"])
async def test_a_box_away_at_the_cancel_is_stopped_when_it_comes_back(
    tmp_path: Path, over: str
) -> None:
    # The box resumes the warning it holds when it restarts (section 3.4); the stop it could
    # not be sent while away goes to it the moment it is back, and its delivery, like the
    # others, ends stopped on the box (not by a resend after the confirmation timeout).
    async with speaker_system(tmp_path, over, play_seconds=60.0) as system:
        alert = make_alert("away-at-cancel")
        key = alert_key(alert)
        result = await system.service.submit(alert, origin="test")
        await system.wait_playing(key, system.county_boxes)
        away = sorted(system.county_boxes)[0]
        await system.fleet.box(away).stop()
        await system.channel.wait_online([away], within_s=10, online=False)
        cancel = make_alert("away-at-cancel-c", msg_type=MsgType.CANCEL, references=[alert])
        await system.service.submit(cancel, origin="test")
        await system.fleet.restart(away)
        summary = await wait_until_complete(system.service, result.alert_id, timeout=20)
        assert summary == {"loudspeaker": {"confirmed": 3}}
        for row in await deliveries(system.service, result.alert_id):
            assert "stopped on box" in (await details(system.service, row["id"]))[-1]
        await system.wait_stopped(key, within_s=5)
        assert system.played(key) == {}
