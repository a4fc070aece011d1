"""Attention first through the real core, channel, HTTP server and box agents: with the
attention clip configured, every box starts the stored signal before the warning's audio is
published, goes on with the downloaded warning where its speech starts and hears the signal
once; the delivery is settled by the warning's acks alone, and the signal asks for its start
only."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from channels.loudspeaker.commands import alert_key
from tests.core.support import make_alert, wait_until_complete
from tests.loudspeaker.conftest import speaker_system

SIGNAL = b"the attention signal as the boxes store it"


async def test_boxes_sound_the_signal_before_the_warning_is_published(tmp_path: Path) -> None:
    clip = {"id": "attention", "sha256": hashlib.sha256(SIGNAL).hexdigest()}
    async with speaker_system(tmp_path, attention_clip=clip) as system:
        (tmp_path / "boxes" / "clips" / "attention").write_bytes(SIGNAL)
        sent = make_alert("attention-first")
        alert_id = (await system.service.submit(sent, origin="test")).alert_id
        summary = await wait_until_complete(system.service, alert_id, timeout=60)
        key = alert_key(sent)
        records = [r for r in system.fleet.log.records if r.request.alert_id == key]
        (published,) = system.channel.library.directory.glob("*.mp3")
    boxes = {r.request.box_id for r in records}
    assert boxes and summary == {"loudspeaker": {"confirmed": len(boxes)}}
    published_at = datetime.fromtimestamp(published.stat().st_mtime, UTC)
    for box in boxes:
        played = [r for r in records if r.request.box_id == box]
        # The stored signal first, then the downloaded warning from its speech: once each.
        assert [r.request.source for r in played] == ["clip", "url"], played
        assert played[0].request.path.name == "attention"
        assert played[0].started_at < published_at
        assert played[1].request.start_s > 0 and played[1].request.path.name == published.stem
        assert played[0].ended_at is not None and played[0].ended_at <= played[1].started_at
        # The signal sent ahead asked for its start alone, the warning for start and end.
        journal = json.loads((tmp_path / "boxes" / "state" / f"{box}.json").read_text())
        asked = {e["cmd_id"].split("-")[0]: (e["acks"], e["said"][0]) for e in journal["entries"]}
        assert asked == {
            "attention": (["started"], "started"),
            "play": (["started", "finished"], "finished"),
        }
