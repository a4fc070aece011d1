"""Hub, real box agents and the fleet simulator end to end over TCP, serial and MQTT."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta

from drivers.speaker.codec import box_target, encode_command
from drivers.speaker.messages import AckStage, BroadcastClass, Priority, Stop
from drivers.speaker.simulator import box_key, played_boxes


async def test_alert_plays_on_every_box_of_its_area_and_no_other(
    rig, make_play, media_server
) -> None:
    area, other = rig.areas
    inside, outside = rig.area_boxes(area), rig.area_boxes(other)
    assert inside and outside and not inside & outside
    command = make_play("c-area", "alert-1")
    await rig.send_to_area(area, command)
    await rig.events.wait_acks("c-area", AckStage.FINISHED, inside)
    # A marker for every box afterwards: per-box order means any stray delivery of the first
    # command to the other area would have been acknowledged before the marker.
    marker = make_play("c-marker", "alert-marker")
    await asyncio.gather(*(rig.hub.send_command(b, marker) for b in rig.box_ids))
    await rig.events.wait_acks("c-marker", AckStage.FINISHED, set(rig.box_ids))
    assert set(played_boxes(rig.fleet.log, "alert-1")) == inside
    assert rig.events.acked_boxes("c-area", AckStage.ACCEPTED) == inside
    for box in inside:
        # A box may repeat an ack (after a reconnect or a serial SYNC); the stages keep order.
        stages = list(dict.fromkeys(a.stage for a in rig.events.acks("c-area", box_id=box)))
        assert stages == [AckStage.ACCEPTED, AckStage.STARTED, AckStage.FINISHED]


async def test_box_restarted_mid_alert_finishes_without_double_playback(
    rig, make_play, media_server
) -> None:
    box = rig.box_ids[0]
    rig.fleet.set_play_seconds(0.6)
    command = make_play("c-restart", "alert-2")
    await rig.hub.send_command(box, command)
    await rig.events.wait_acks("c-restart", AckStage.STARTED, {box})
    await rig.fleet.restart(box)
    await rig.events.wait_acks("c-restart", AckStage.FINISHED, {box}, within_s=8)
    # The server retries after the reconnect, as a channel does: the box only re-acknowledges.
    await rig.events.wait_for(lambda: box in rig.hub.online_boxes(), 8)
    before = len(rig.events.acks("c-restart", AckStage.FINISHED, box))
    await rig.hub.send_command(box, command)
    await rig.events.wait_for(
        lambda: len(rig.events.acks("c-restart", AckStage.FINISHED, box)) > before
    )
    records = [r for r in rig.fleet.log.records if r.request.alert_id == "alert-2"]
    assert len(rig.fleet.log.completed(box, "alert-2")) == 1
    assert [r.interrupted for r in records] == [True, False]


async def test_wrongly_signed_replayed_and_expired_commands_are_refused(
    rig, make_play, media_server
) -> None:
    box = rig.box_ids[1]
    url = media_server.url("alert.wav")
    forged = encode_command(make_play("c-forged", "a-f", url), box_target(box), b"k" * 32)
    await rig.hub.send_signed(box, forged)
    for_other = encode_command(
        make_play("c-other", "a-o", url), box_target(rig.box_ids[2]), box_key(b"x", "y")
    )
    await rig.hub.send_signed(box, for_other)
    expired = make_play("c-expired", "a-e", url, expires_in_s=-1)
    await rig.hub.send_command(box, expired)
    good = make_play("c-good", "a-g", url)
    await rig.hub.send_command(box, good)
    await rig.events.wait_acks("c-good", AckStage.FINISHED, {box})
    await rig.hub.send_command(box, good)
    await rig.events.wait_for(lambda: len(rig.events.acks("c-good", box_id=box)) >= 4)
    assert [a.reason for a in rig.events.acks("c-forged")] == ["bad_signature"]
    assert [a.reason for a in rig.events.acks("c-other")] == ["bad_signature"]
    assert [(a.stage, a.reason) for a in rig.events.acks("c-expired")] == [
        (AckStage.FAILED, "expired")
    ]
    assert len(rig.fleet.log.completed(box, "a-g")) == 1
    assert {r.request.alert_id for r in rig.fleet.log.records} == {"a-g"}


async def test_download_failure_falls_back_to_the_stored_clip(rig, make_play, media_server) -> None:
    box = rig.box_ids[2]
    command = make_play("c-fallback", "alert-3", media_server.missing_url)
    await rig.hub.send_command(box, command)
    await rig.events.wait_acks("c-fallback", AckStage.FINISHED, {box})
    started = rig.events.acks("c-fallback", AckStage.STARTED)[0]
    assert (started.source, started.reason) == ("fallback:generic", "download_failed")
    (record,) = rig.fleet.log.completed(box, "alert-3")
    assert record.request.path.name == "generic"


async def test_cancel_stops_playback_within_a_second(rig, make_play, media_server) -> None:
    box = rig.box_ids[3]
    rig.fleet.set_play_seconds(30)
    await rig.hub.send_command(box, make_play("c-long", "alert-4"))
    await rig.events.wait_acks("c-long", AckStage.STARTED, {box})
    now = datetime.now(UTC)
    stop = Stop(cmd_id="c-stop", alert_id="alert-4", issued_at=now, expires_at=now + timedelta(60))
    began = time.monotonic()
    await rig.hub.send_command(box, stop)
    await rig.events.wait_for(lambda: bool(rig.events.acks("c-long", AckStage.FAILED)), 1.0)
    assert time.monotonic() - began < 1.0
    assert rig.events.acks("c-long", AckStage.FAILED)[0].reason == "stopped"
    (record,) = [r for r in rig.fleet.log.records if r.request.alert_id == "alert-4"]
    assert record.interrupted and record.ended_at is not None
    assert (record.ended_at - now).total_seconds() < 1.0
    await rig.events.wait_acks("c-stop", AckStage.FINISHED, {box})


async def test_emergency_preempts_a_running_test(rig, make_play, media_server) -> None:
    box = rig.box_ids[0]
    url = media_server.url("alert.wav")
    rig.fleet.set_play_seconds(30)
    drill = make_play(
        "c-drill",
        "drill-1",
        url,
        priority=Priority.LIVE_DRILL,
        broadcast_class=BroadcastClass.LIVE_DRILL,
    )
    await rig.hub.send_command(box, drill)
    await rig.events.wait_acks("c-drill", AckStage.STARTED, {box})
    rig.fleet.set_play_seconds(0.05)
    await rig.hub.send_command(box, make_play("c-emergency", "alert-5", url))
    await rig.events.wait_acks("c-emergency", AckStage.FINISHED, {box})
    assert [a.reason for a in rig.events.acks("c-drill", AckStage.FAILED)] == ["preempted"]
    drill_record, emergency_record = rig.fleet.log.records[-2:]
    assert drill_record.request.alert_id == "drill-1" and drill_record.interrupted
    assert emergency_record.request.alert_id == "alert-5" and not emergency_record.interrupted


async def test_a_warning_cut_off_by_a_more_urgent_one_plays_again_after_it(
    rig, make_play, media_server
) -> None:
    box = rig.box_ids[0]
    url = media_server.url("alert.wav")
    rig.fleet.set_play_seconds(30)
    await rig.hub.send_command(box, make_play("c-county", "county-1", url))
    await rig.events.wait_acks("c-county", AckStage.STARTED, {box})
    rig.fleet.set_play_seconds(0.05)
    urgent = make_play("c-national", "national-1", url, priority=Priority.EMERGENCY + 10)
    await rig.hub.send_command(box, urgent)
    await rig.events.wait_acks("c-county", AckStage.FINISHED, {box})
    # Repeats of one ack (a serial SYNC, a reconnect) are dropped; the order is what counts.
    acks = [
        k
        for k, _ in itertools.groupby(
            (a.stage, a.reason) for a in rig.events.acks("c-county", box_id=box)
        )
    ]
    assert acks[:3] == [
        (AckStage.ACCEPTED, None),
        (AckStage.STARTED, None),
        (AckStage.ACCEPTED, "preempted"),
    ]
    assert acks[-1] == (AckStage.FINISHED, None) and AckStage.FAILED not in dict(acks)
    played = [(r.request.alert_id, r.interrupted) for r in rig.fleet.log.records[-3:]]
    assert played == [("county-1", True), ("national-1", False), ("county-1", False)]
