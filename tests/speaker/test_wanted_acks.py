"""The ``acks`` member of a command (docs/protocols/speaker.md section 3.2): a box sends only
the stages the server asked for, ``failed`` and a preemption always, repeats the latest stage
it sent on reconnecting and after a restart, and a command without the member gets every
stage, as before."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from drivers.speaker.codec import (
    CommandTemplate,
    decode_box_message,
    decode_command,
    encode_command,
)
from drivers.speaker.errors import SpeakerProtocolError
from drivers.speaker.messages import AckStage, BoxAck, PlayClip, Priority
from drivers.speaker.simulator_lean import LeanBox
from drivers.speaker.store import PlayJournal
from drivers.speaker.testing import MediaServer
from tests.speaker.agent_rig import CLIP, KEY, Box, header, sha

STARTED = (AckStage.STARTED,)
PLAYING = (AckStage.STARTED, AckStage.FINISHED)


def clip(cmd_id: str, acks: tuple[AckStage, ...] | None, **fields: object) -> PlayClip:
    return PlayClip(clip_id="generic", sha256=sha(CLIP), priority=100, acks=acks, **header(cmd_id))


async def settle(box: Box) -> None:
    """Let the box send what it has to send (its outbox is drained by a task)."""
    for _ in range(20):
        await asyncio.sleep(0.01)


def test_the_member_is_signed_checked_and_optional() -> None:
    command = clip("c1", STARTED)
    data = encode_command(command, "box:b1", KEY)
    assert b'"acks":["started"]' in data
    assert decode_command(data, lambda _t: KEY)[1].acks == STARTED
    assert (
        decode_command(encode_command(clip("c2", None), "box:b1", KEY), lambda _t: KEY)[1].acks
        is None
    )
    assert CommandTemplate(command).sign("c1", "box:b1", KEY) == data
    for bad in (["started", "started"], ["failed"], "started", [1], ["heard"]):
        obj = json.loads(encode_command(clip("c3", None), "box:b1", KEY))
        obj["acks"] = bad
        wire = json.dumps(obj).encode()
        with pytest.raises(SpeakerProtocolError):
            decode_command(wire, lambda _t: KEY)


async def test_a_box_sends_only_the_stages_asked_for_and_every_failure(
    box: Box, media: MediaServer
) -> None:
    await box.send(clip("c1", STARTED))
    await box.wait_ack("c1", AckStage.STARTED)
    await asyncio.sleep(0.1)  # the clip finishes at once: its finished must not follow
    assert box.acks("c1") == [(AckStage.STARTED, None)]
    assert len(box.log.completed()) == 1
    await box.send(replace(clip("c2", STARTED), clip_id="not-stored"))
    await box.wait_ack("c2", AckStage.FAILED)
    expired = replace(clip("c3", ()), expires_at=datetime.now(UTC) - timedelta(seconds=1))
    await box.send(expired)
    await box.wait_ack("c3", AckStage.FAILED)
    assert box.acks("c3") == [(AckStage.FAILED, "expired")]
    await box.send(clip("c4", None))  # no member: every stage, as before
    await box.wait_ack("c4", AckStage.FINISHED)
    assert [s for s, _ in box.acks("c4")] == [
        AckStage.ACCEPTED,
        AckStage.STARTED,
        AckStage.FINISHED,
    ]


async def test_a_reconnecting_box_repeats_the_latest_stage_asked_for(box: Box) -> None:
    await box.send(clip("c1", STARTED))
    await box.send(clip("c2", PLAYING))
    await box.send(clip("c3", (AckStage.FINISHED,)))
    await box.wait_ack("c3", AckStage.FINISHED)
    await box.wait_ack("c2", AckStage.FINISHED)
    box.messages.clear()
    box.agent.link_up()
    await settle(box)
    assert box.acks("c1") == [(AckStage.STARTED, None)]
    assert box.acks("c2") == [(AckStage.FINISHED, None)]
    assert box.acks("c3") == [(AckStage.FINISHED, None)]
    box.messages.clear()
    await box.send(clip("c1", STARTED))  # a retry: not played again, its latest ack again
    await settle(box)
    assert box.acks("c1") == [(AckStage.STARTED, None)]
    assert len(box.log.completed()) == 3


async def test_nothing_is_repeated_before_a_stage_asked_for(box: Box) -> None:
    box.player.duration_s = 30
    await box.send(clip("long", None))
    await box.wait_ack("long", AckStage.STARTED)
    await box.send(replace(clip("queued", (AckStage.FINISHED,)), priority=100))
    await settle(box)
    assert box.acks("queued") == []
    box.agent.link_up()
    await settle(box)
    assert box.acks("queued") == []


async def test_a_preempted_warning_says_so_and_starts_again(box: Box) -> None:
    box.player.duration_s = 0.3
    await box.send(replace(clip("low", PLAYING), priority=Priority.EMERGENCY))
    await box.wait_ack("low", AckStage.STARTED)
    await box.send(replace(clip("high", PLAYING), priority=Priority.EMERGENCY + 1))
    await box.wait_ack("low", AckStage.FINISHED, within_s=5)
    assert box.acks("low") == [
        (AckStage.STARTED, None),
        (AckStage.ACCEPTED, "preempted"),
        (AckStage.STARTED, None),
        (AckStage.FINISHED, None),
    ]
    assert box.acks("high") == [(AckStage.STARTED, None), (AckStage.FINISHED, None)]


async def test_a_restarted_box_finishes_and_reports_only_what_was_asked(
    box: Box, media: MediaServer
) -> None:
    box.player.duration_s = 30
    await box.send(clip("c1", (AckStage.FINISHED,)))
    await settle(box)
    assert box.acks("c1") == []
    await box.stop()
    box.player.duration_s = 0.0
    box.messages.clear()
    box.start()  # the journal replays the command and its acks member
    await box.wait_ack("c1", AckStage.FINISHED)
    assert box.acks("c1") == [(AckStage.FINISHED, None)]


async def test_a_journal_written_before_the_member_repeats_its_stage(box: Box) -> None:
    await box.send(clip("c1", None))
    await box.wait_ack("c1", AckStage.FINISHED)
    await box.stop()
    path = box.tmp_path / "journal.json"
    raw = json.loads(path.read_text())
    for entry in raw["entries"]:
        del entry["acks"], entry["said"]
    path.write_text(json.dumps(raw))
    journal = PlayJournal(path)
    await journal.load()
    entry = journal.get("c1")
    assert entry is not None and entry.acks is None
    assert entry.said == (AckStage.FINISHED, None, "clip")
    box.messages.clear()
    box.start()
    await settle(box)
    box.agent.link_up()
    await box.wait_ack("c1", AckStage.FINISHED)


def test_the_lean_box_honours_the_member() -> None:
    lean = LeanBox("b1", KEY, {})
    sent: list[BoxAck] = []

    def record(messages: list[bytes]) -> None:
        for data in messages:
            message = decode_box_message(data, lambda _box: KEY)
            assert isinstance(message, BoxAck)
            sent.append(message)

    lean.send = record
    lean.command(encode_command(clip("c1", STARTED), "box:b1", KEY))
    lean.command(encode_command(clip("c2", ()), "box:b1", KEY))
    lean.command(encode_command(clip("c3", None), "box:b1", KEY))
    lean.command(encode_command(clip("c1", STARTED), "box:b1", KEY))
    assert [(a.cmd_id, a.stage) for a in sent] == [
        ("c1", AckStage.STARTED),
        ("c3", AckStage.ACCEPTED),
        ("c3", AckStage.STARTED),
        ("c3", AckStage.FINISHED),
        ("c1", AckStage.STARTED),
    ]
