"""The play command goes out the moment a batch is sent, before the warning is rendered
(channels/loudspeaker/sending.py; docs/protocols/speaker.md section 5.1, sealed audio), end to
end through the real core, channel, HTTP server and box agents, over TCP and MQTT: every box
starts its stored attention signal while the render is held back, then plays the warning it
downloads sealed where its speech starts; one command per box or group and none other; a
Cancel while the warning renders stops the boxes, whose reports settle the deliveries as
stopped, and the warning never plays; a render that fails leaves the boxes on
the hazard's stored clip, and the delivery says so; a server stopped while the warning renders
stops the render too, and nothing of the channel runs on. And a group command whose send is
cut off by the dispatcher's deadline is sent afresh by the next attempt."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from broadcaster.cap import MsgType
from channels.loudspeaker.commands import alert_key
from drivers.speaker import SpeakerTimeoutError
from tests.core.support import COUNTY, make_alert, wait_until_complete
from tests.loudspeaker.conftest import IN_COUNTY, HeldRender, SpeakerSystem, speaker_system

SIGNAL = b"the attention signal as the boxes store it"
CLIP = {"id": "attention", "sha256": hashlib.sha256(SIGNAL).hexdigest()}
AREAS = ([COUNTY], [COUNTY], [COUNTY])
GROUPED = [f"box-{IN_COUNTY[0]}", f"box-{IN_COUNTY[1]}", f"box-{IN_COUNTY[2]}"]


class Sent:
    """The commands the channel's hub hands out, as bytes."""

    def __init__(self, system: SpeakerSystem) -> None:
        hub = system.channel.hub
        assert hub is not None
        self.data: list[bytes] = []
        send_each, send_same, publish_area = hub.send_each, hub.send_same, hub.publish_area

        async def each(commands: Sequence[tuple[str, bytes]]) -> list[Any]:
            self.data += [data for _, data in commands]
            return await send_each(commands)

        async def same(boxes: Sequence[str], data: bytes) -> list[Any]:
            self.data.append(data)
            return await send_same(boxes, data)

        async def area(where: str, data: bytes) -> None:
            self.data.append(data)
            await publish_area(where, data)

        hub.send_each = each  # type: ignore[method-assign]
        hub.send_same = same  # type: ignore[method-assign]
        hub.publish_area = area  # type: ignore[method-assign]

    def of(self, alert: Any) -> list[bytes]:
        mine = f'"alert_id":"{alert_key(alert)}",'.encode()
        return [data for data in self.data if mine in data]


@asynccontextmanager
async def held_system(
    tmp_path: Path, transport: str
) -> AsyncIterator[tuple[SpeakerSystem, HeldRender, Sent]]:
    async with speaker_system(tmp_path, transport, groups=AREAS, attention_clip=CLIP) as system:
        (tmp_path / "boxes" / "clips" / "attention").write_bytes(SIGNAL)
        assert system.service.audio is not None
        yield system, HeldRender(system.service.audio), Sent(system)


@pytest.mark.parametrize("transport", ["tcp", "mqtt"])
async def test_boxes_start_the_signal_before_the_warning_is_rendered(
    tmp_path: Path, transport: str
) -> None:
    async with held_system(tmp_path, transport) as (system, render, sent):
        alert = make_alert(f"early-{transport}")
        result = await system.service.submit(alert, origin="test")
        key = alert_key(alert)
        boxes = system.county_boxes
        # Every box sounds the signal while the warning has not even started rendering.
        await system.fleet.log.wait_for(
            lambda records: (
                {r.request.box_id for r in records if r.request.alert_id == key} >= boxes
            ),
            20,
        )
        assert not list(system.channel.library.directory.glob("*.mp3"))
        render.gate.set()
        summary = await wait_until_complete(system.service, result.alert_id, timeout=60)
        (published,) = system.channel.library.directory.glob("*.mp3")
        rows = await system.service.database.run(system.service.outbox.deliveries, result.alert_id)
        records = [r for r in system.fleet.log.records if r.request.alert_id == key]
        commands = sent.of(alert)
    assert summary == {"loudspeaker": {"confirmed": len(boxes)}}
    # One play command per box or group (the same bytes for a group, however many times they
    # were written), without a SHA-256, and nothing else.
    assert all(b'"type":"play_url"' in data and b'"sha256"' not in data for data in commands)
    groups = {data for data in commands if b'"to":"area:' in data}
    assert len(groups) == 1 and len(set(commands)) == 1 + len(boxes - set(GROUPED))
    for box in boxes:
        played = [r for r in records if r.request.box_id == box]
        # The stored signal first, then the sealed warning from its speech: once each.
        assert [r.request.source for r in played] == ["attention:attention", "url"], played
        assert played[0].request.path.name == "attention"
        assert played[1].request.path.name == published.stem
        assert played[1].request.start_s > 0
        assert played[0].ended_at is not None and played[0].ended_at <= played[1].started_at
        # The box journaled one command, asking for its start and its end.
        journal = json.loads((tmp_path / "boxes" / "state" / f"{box}.json").read_text())
        asked = [(e["kind"], e["acks"], e["said"][0]) for e in journal["entries"]]
        assert asked == [("play_url", ["started", "finished"], "finished")]
    # What each delivery reports is the audio the boxes played.
    sha256 = published.stem
    assert {r["content"]["audio"] for r in rows} == {sha256}


async def test_a_cancel_while_the_warning_renders_stops_the_boxes(tmp_path: Path) -> None:
    async with held_system(tmp_path, "mqtt") as (system, render, sent):
        alert = make_alert("early-cancel")
        result = await system.service.submit(alert, origin="test")
        key = alert_key(alert)
        await system.wait_playing(key, set(GROUPED))
        cancel = make_alert("early-cancel-c", msg_type=MsgType.CANCEL, references=[alert])
        await system.service.submit(cancel, origin="test")
        await system.wait_stopped(key, 20)
        render.gate.set()
        await wait_until_complete(system.service, result.alert_id, timeout=60)
        await asyncio.sleep(1.0)
        database, outbox = system.service.database, system.service.outbox
        rows = await database.run(outbox.deliveries, result.alert_id)
        last = [(await database.run(outbox.events, row["id"]))[-1]["detail"] for row in rows]
        records = [r for r in system.fleet.log.records if r.request.alert_id == key]
        commands = sent.of(alert)
    # Each box reported the warning stopped on request, which settles its delivery.
    assert {r["state"] for r in rows} == {"confirmed"}
    assert all("stopped on box" in str(detail) for detail in last), last
    assert any(b'"type":"stop"' in data for data in commands)
    # The signal was cut off; the warning itself never played.
    assert records and {r.request.source for r in records} == {"attention:attention"}


async def test_a_failed_render_leaves_the_boxes_on_the_stored_clip(tmp_path: Path) -> None:
    async with held_system(tmp_path, "tcp") as (system, render, _):
        render.fail = True
        render.gate.set()
        alert = make_alert("early-failed")
        result = await system.service.submit(alert, origin="test")
        summary = await wait_until_complete(system.service, result.alert_id, timeout=60)
        rows = await system.service.database.run(system.service.outbox.deliveries, result.alert_id)
        key = alert_key(alert)
        records = [r for r in system.fleet.log.records if r.request.alert_id == key]
    boxes = system.county_boxes
    assert summary == {"loudspeaker": {"confirmed": len(boxes)}}
    for box in boxes:
        played = [r.request for r in records if r.request.box_id == box]
        assert [p.source for p in played] == ["attention:attention", "fallback:generic"]
    for row in rows:
        assert row["content"]["audio"] == "clip:generic"
        assert "could not be rendered" in row["warning"]


async def test_a_server_stopped_while_the_warning_renders_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    # The core stops its sends before its channels, but not the render they waited for: the
    # channel's stop ends it, so nothing of a stopped channel runs on.
    async with held_system(tmp_path, "tcp") as (system, _, sent):
        alert = make_alert("early-stopped")
        await system.service.submit(alert, origin="test")
        await system.wait_playing(alert_key(alert), system.county_boxes)
        assert sent.of(alert)
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not left, left


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
