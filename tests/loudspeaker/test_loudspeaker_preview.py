"""The loudspeaker preview is what the boxes play: the audio (its SHA-256), its duration,
priority, volume and repeats, counted in boxes, checked against what the box agents played.
A preview publishes nothing a box can fetch; the send then publishes the very render the
officer heard."""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp

from channels.loudspeaker.commands import alert_key
from tests.core.previewing import assert_sent_as_previewed, preview_and_send
from tests.core.support import make_alert, wait_until_complete
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


async def test_a_preview_publishes_nothing_and_the_send_publishes_the_previewed_audio(
    tmp_path: Path,
) -> None:
    async with speaker_system(tmp_path) as system:
        service, library = system.service, system.channel.library
        alert = make_alert("speaker-preview-unpublished")
        preview = (await service.preview(alert, channels=["loudspeaker"]))["loudspeaker"]
        (content,) = preview.contents
        (heard,) = preview.audio
        rendered = heard.path.read_bytes()
        assert heard.sha256 == content["audio"] == hashlib.sha256(rendered).hexdigest()
        assert heard.targets == 3 and [p.language for p in heard.spoken] == ["zh-CN"]
        assert heard.content_type == "audio/mpeg"
        # Nothing a box can see: no published file, and its URL is not served.
        assert not library.directory.exists() or not any(library.directory.iterdir())
        url = f"{service.config.server.public_url}/channels/loudspeaker/audio/{heard.sha256}.mp3"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                assert response.status == 404
            renders = service.audio.renderer.cache.directory / "renders"
            made = sorted(renders.iterdir())
            result = await service.submit(alert, origin="test", channels=["loudspeaker"])
            summary = await wait_until_complete(service, result.alert_id, timeout=40)
            assert summary == {"loudspeaker": {"confirmed": 3}}
            async with http.get(url) as response:
                assert response.status == 200
                published = await response.read()
        # The send published the previewed render itself, rendering nothing new.
        assert sorted(renders.iterdir()) == made
        assert published == rendered
        assert [p.name for p in library.directory.glob("*.mp3")] == [f"{heard.sha256}.mp3"]
        played = system.fleet.log.completed(alert_id=alert_key(alert))
        assert {hashlib.sha256(r.request.path.read_bytes()).hexdigest() for r in played} == {
            heard.sha256
        }
