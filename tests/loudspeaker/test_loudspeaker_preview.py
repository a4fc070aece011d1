"""The loudspeaker preview is what the boxes play: the audio (its SHA-256), its duration,
priority, volume and repeats, counted in boxes, checked against what the box agents played."""

from __future__ import annotations

import hashlib
from pathlib import Path

from channels.loudspeaker.commands import alert_key
from tests.core.previewing import assert_sent_as_previewed, preview_and_send
from tests.core.support import make_alert
from tests.loudspeaker.conftest import speaker_system


async def test_preview_equals_what_each_box_plays(tmp_path: Path) -> None:
    async with speaker_system(tmp_path, repeat=2, volume=70) as system:
        alert = make_alert("speaker-preview")
        outcome = await preview_and_send(system.service, alert, "loudspeaker", timeout=40)
        records = system.fleet.log.completed(alert_id=alert_key(alert))
        played = {
            (r.request.box_id, hashlib.sha256(r.request.path.read_bytes()).hexdigest())
            for r in records
        }
        requests = records
    assert outcome.summary == {"loudspeaker": {"confirmed": 3}}
    assert_sent_as_previewed(outcome)
    assert (outcome.preview.unit, outcome.preview.targets) == ("boxes", 3)
    (content,) = outcome.preview.contents
    assert content["language"] == "zh-CN" and content["duration_s"] > 1
    assert content["volume"] == 70
    assert played == {(box, content["audio"]) for box in system.county_boxes}
    assert {(r.request.priority, r.request.volume) for r in requests} == {
        (content["priority"], content["volume"])
    }
    per_box = {box: sum(r.request.box_id == box for r in requests) for box in system.county_boxes}
    assert set(per_box.values()) == {content["repeat"]}
