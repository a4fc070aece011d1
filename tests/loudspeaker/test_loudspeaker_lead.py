"""A play command published to an area holds back behind its attention clip
(channels/loudspeaker/groups.py): end to end over MQTT, every box of the area reports the clip
started before the play command goes out, while over TCP nothing is held back; and the rule
itself: a box that never reports holds it back at most ``LEAD_S``, ``accepted`` is not a
report, ``failed`` is, and a clip not published to an area holds nothing back."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from broadcaster.cap import MsgType
from channels.loudspeaker import groups
from channels.loudspeaker.commands import alert_key
from channels.loudspeaker.groups import AttentionLead
from drivers.speaker import AckStage, BoxAck, HubEvent, SpeakerTimeoutError
from tests.core.support import COUNTY, make_alert, wait_until_complete
from tests.loudspeaker.conftest import IN_COUNTY, speaker_system

SIGNAL = b"the attention signal as the boxes store it"
GROUPED = [f"box-{IN_COUNTY[0]}", f"box-{IN_COUNTY[1]}", f"box-{IN_COUNTY[2]}"]


@pytest.mark.parametrize("transport", ["tcp", "mqtt"])
async def test_the_play_command_waits_for_the_starts_of_the_clip_over_mqtt_only(
    tmp_path: Path, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The boxes handle each command 3 s late, after the warning is rendered: over MQTT
    the play command still waits for the clip's starts (the lead is made long enough)."""
    monkeypatch.setattr(groups, "LEAD_S", 10.0)
    clip = {"id": "attention", "sha256": hashlib.sha256(SIGNAL).hexdigest()}
    areas = ([COUNTY], [COUNTY], [COUNTY])
    async with speaker_system(
        tmp_path, transport, groups=areas, attention_clip=clip, command_delay_s=3.0
    ) as system:
        (tmp_path / "boxes" / "clips" / "attention").write_bytes(SIGNAL)
        hub = system.channel.hub
        assert hub is not None
        started: dict[str, float] = {}
        plays: list[float] = []
        handler: Callable[[HubEvent], None] = system.channel._on_event

        def on_event(event: HubEvent) -> None:
            handler(event)
            if (
                isinstance(event, BoxAck)
                and event.cmd_id.startswith("attention-")
                and event.stage is AckStage.STARTED
            ):
                started.setdefault(event.box_id, time.monotonic())

        send_each, publish_area = hub.send_each, hub.publish_area

        def note(data: bytes) -> None:
            if b'"type":"play_url"' in data:
                plays.append(time.monotonic())

        async def recording_each(commands: Sequence[tuple[str, bytes]]) -> list[Any]:
            for _, data in commands:
                note(data)
            return await send_each(commands)

        async def recording_area(area: str, data: bytes) -> None:
            note(data)
            await publish_area(area, data)

        system.channel._on_event = on_event  # type: ignore[method-assign]
        hub.send_each = recording_each  # type: ignore[method-assign]
        hub.publish_area = recording_area  # type: ignore[method-assign]
        alert = make_alert(f"lead-{transport}")
        result = await system.service.submit(alert, origin="test")
        summary = await wait_until_complete(system.service, result.alert_id, timeout=60)
    assert summary == {"loudspeaker": {"confirmed": len(system.county_boxes)}}
    assert set(GROUPED) <= set(started) and plays
    if transport == "mqtt":
        assert max(started[box] for box in GROUPED) <= min(plays)
    else:  # written to each box as soon as the warning is rendered, before the boxes report
        assert min(plays) < min(started[box] for box in GROUPED)


async def test_a_cancel_while_the_play_command_holds_back_sends_no_play_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(groups, "LEAD_S", 10.0)
    clip = {"id": "attention", "sha256": hashlib.sha256(SIGNAL).hexdigest()}
    areas = ([COUNTY], [COUNTY], [COUNTY])
    async with speaker_system(
        tmp_path, "mqtt", groups=areas, attention_clip=clip, command_delay_s=3.0
    ) as system:
        (tmp_path / "boxes" / "clips" / "attention").write_bytes(SIGNAL)
        hub = system.channel.hub
        assert hub is not None
        published: list[bytes] = []
        publish_area = hub.publish_area

        async def recording_area(area: str, data: bytes) -> None:
            published.append(data)
            await publish_area(area, data)

        hub.publish_area = recording_area  # type: ignore[method-assign]
        alert = make_alert("lead-cancel")
        result = await system.service.submit(alert, origin="test")
        async with asyncio.timeout(20):  # the clip is out, the boxes have not reported yet
            while not any(b'"type":"play_clip"' in data for data in published):
                await asyncio.sleep(0.02)
        cancel = make_alert("lead-cancel-c", msg_type=MsgType.CANCEL, references=[alert])
        await system.service.submit(cancel, origin="test")
        await asyncio.sleep(12)  # past the lead
        rows = await system.service.database.run(system.service.outbox.deliveries, result.alert_id)
        records = [r for r in system.fleet.log.records if r.request.alert_id == alert_key(alert)]
    # The Cancel itself plays to the boxes; the alert it lifts sent no play command.
    mine = f'"alert_id":"{alert_key(alert)}",'.encode()
    assert not any(b'"type":"play_url"' in data and mine in data for data in published)
    assert any(b'"type":"play_clip"' in data and mine in data for data in published)
    assert {r.request.source for r in records} <= {"clip"}
    assert {r["state"] for r in rows} == {"cancelled"}


def ack(box: str, cmd_id: str, stage: AckStage) -> BoxAck:
    return BoxAck(box_id=box, at=datetime.now(UTC), cmd_id=cmd_id, alert_id="a", stage=stage)


def clip_sent(monkeypatch: pytest.MonkeyPatch, lead_s: float, boxes: list[str]) -> AttentionLead:
    """A lead of ``lead_s`` seconds and the clip ``attention-1`` sent to ``boxes`` now."""
    monkeypatch.setattr(groups, "LEAD_S", lead_s)
    watch = AttentionLead()
    watch.sending("attention-1")
    watch.sent("attention-1", boxes)
    return watch


async def waited(watch: AttentionLead, cmd_ids: list[str]) -> float:
    """Seconds ``watch.wait(cmd_ids)`` took."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    await watch.wait(cmd_ids)
    return loop.time() - began


async def test_a_box_that_never_reports_holds_the_play_back_at_most_the_lead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watch = clip_sent(monkeypatch, 0.3, ["b1", "b2", "b3"])
    watch.reported(ack("b1", "attention-1", AckStage.STARTED))
    watch.reported(ack("b2", "attention-1", AckStage.ACCEPTED))  # not yet a start
    watch.reported(ack("b2", "attention-1", AckStage.FAILED))  # a box that cannot play it
    assert 0.25 <= await waited(watch, ["attention-1", "attention-unknown"]) < 1.0  # b3: never
    assert await waited(watch, ["attention-1"]) < 0.05  # the lead is over: at once


async def test_the_play_goes_at_once_when_every_box_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watch = clip_sent(monkeypatch, 5.0, ["b1", "b2"])
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, watch.reported, ack("b1", "attention-1", AckStage.STARTED))
    loop.call_later(0.2, watch.reported, ack("b2", "attention-1", AckStage.FINISHED))
    assert 0.15 <= await waited(watch, ["attention-1"]) < 1.0
    # Acks of a clip never sent to a group are not kept, and hold nothing back.
    watch.reported(ack("b1", "attention-3", AckStage.STARTED))
    assert await waited(watch, ["attention-3"]) < 0.05


async def test_a_report_that_overtakes_the_send_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(groups, "LEAD_S", 5.0)
    watch = AttentionLead()
    watch.sending("attention-1")
    watch.reported(ack("b1", "attention-1", AckStage.STARTED))  # before the send returned
    watch.sent("attention-1", ["b1"])
    assert await waited(watch, ["attention-1"]) < 0.05


async def test_a_group_send_cut_off_by_its_deadline_is_sent_afresh_next_time(
    tmp_path: Path,
) -> None:
    """The first send of a group command hangs at the broker and is cancelled (the
    dispatcher's deadline): a caller sharing it gets a retryable error instead of waiting
    for ever, and the next attempt publishes again."""
    async with speaker_system(tmp_path, "mqtt", groups=([COUNTY],)) as system:
        hub = system.channel.hub
        assert hub is not None
        sender = system.channel._sender
        publish_area = hub.publish_area
        published: list[str] = []
        frozen = asyncio.Event()

        async def hanging_once(area: str, data: bytes) -> None:
            published.append(area)
            if len(published) == 1:
                frozen.set()
                await asyncio.sleep(3600)
            await publish_area(area, data)

        hub.publish_area = hanging_once  # type: ignore[method-assign]
        data = b'{"type":"stop","alert_id":"*"}'
        first = asyncio.create_task(sender._once(hub, "cmd-1", COUNTY, data, None))
        await frozen.wait()
        sharing = asyncio.create_task(sender._once(hub, "cmd-1", COUNTY, data, None))
        await asyncio.sleep(0.05)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        async with asyncio.timeout(5):
            shared = await sharing
        assert isinstance(shared[COUNTY], SpeakerTimeoutError)
        async with asyncio.timeout(5):
            again = await sender._once(hub, "cmd-1", COUNTY, data, None)
    assert again == {COUNTY: None}
    assert published == [COUNTY, COUNTY]
