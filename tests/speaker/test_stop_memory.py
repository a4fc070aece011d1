"""A stop cancels its alert for good on the box (docs/protocols/speaker.md, section 3.3): a
play command issued no later than the stop is refused however late it arrives, also after a
restart, until the stop expires."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from drivers.speaker.codec import area_target
from drivers.speaker.messages import ALL_ALERTS, AckStage, PlayClip, Stop
from drivers.speaker.testing import MediaServer
from tests.speaker.agent_rig import AREA_KEY, CLIP, Box, header, sha


def play(cmd_id: str, alert_id: str, issued_before_s: float = 0.0) -> PlayClip:
    """A play of the stored clip for ``alert_id``, issued ``issued_before_s`` ago."""
    times = header(cmd_id, alert_id, expires_in_s=600)
    times["issued_at"] -= timedelta(seconds=issued_before_s)
    return PlayClip(clip_id="generic", sha256=sha(CLIP), priority=100, **times)


def played(box: Box) -> list[str]:
    return [r.request.cmd_id for r in box.log.records]


async def test_a_play_issued_before_a_stop_is_refused_whenever_it_arrives(box: Box) -> None:
    await box.send(Stop(**header("stop", "cap,A", expires_in_s=600)))
    await box.wait_ack("stop", AckStage.FINISHED)
    await box.send(play("late", "cap,A", issued_before_s=30))
    await box.send(play("area", "cap,A", issued_before_s=30), AREA_KEY, area_target("150902"))
    await box.send(play("other", "cap,B", issued_before_s=30))
    await box.send(play("reissued", "cap,A"))
    for cmd_id in ("late", "area"):
        await box.wait_ack(cmd_id, AckStage.FAILED)
    for cmd_id in ("other", "reissued"):
        await box.wait_ack(cmd_id, AckStage.FINISHED)
    assert box.acks("late") == [(AckStage.FAILED, "stopped")]
    assert box.acks("area") == [(AckStage.FAILED, "stopped")]
    assert sorted(played(box)) == ["other", "reissued"]


async def test_a_stop_of_every_alert_refuses_every_earlier_play(box: Box) -> None:
    await box.send(Stop(**header("stop", ALL_ALERTS, expires_in_s=600)))
    await box.wait_ack("stop", AckStage.FINISHED)
    for n, alert in enumerate(("cap,A", "cap,B")):
        await box.send(play(f"late{n}", alert, issued_before_s=1))
        await box.wait_ack(f"late{n}", AckStage.FAILED)
        assert box.acks(f"late{n}") == [(AckStage.FAILED, "stopped")]
    await box.send(play("after", "cap,A"))
    await box.wait_ack("after", AckStage.FINISHED)
    assert played(box) == ["after"]


async def test_a_stop_is_remembered_across_a_restart(tmp_path: Path, media: MediaServer) -> None:
    box = Box(tmp_path, media)
    box.start()
    try:
        await box.send(Stop(**header("stop", "cap,A", expires_in_s=600)))
        await box.wait_ack("stop", AckStage.FINISHED)
        await box.stop()
        box.start()
        await box.send(play("late", "cap,A", issued_before_s=30))
        await box.wait_ack("late", AckStage.FAILED)
        assert box.acks("late") == [(AckStage.FAILED, "stopped")]
        assert played(box) == []
    finally:
        await box.stop()
        await box.fetcher.aclose()


async def test_a_stop_no_longer_counts_once_it_expired(box: Box) -> None:
    await box.send(Stop(**header("stop", "cap,A", expires_in_s=0.2)))
    await box.wait_ack("stop", AckStage.FINISHED)
    await asyncio.sleep(0.3)
    await box.send(play("late", "cap,A", issued_before_s=30))
    await box.wait_ack("late", AckStage.FINISHED)
    assert played(box) == ["late"]
