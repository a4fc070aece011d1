"""Bilingual warnings on loudspeaker boxes through the real core, channel, HTTP server and box
agents: each box plays one programme of the languages it serves, in its order; a language
nothing can voice is left out with a warning on the delivery, never a failure, unless no
language of the alert can be voiced at all. A recording the alert carries is found in the
file the box played (cross-correlation of decoded PCM)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from audio.pcm import decode
from broadcaster.cap import Resource
from broadcaster.service import BroadcasterService
from channels.loudspeaker.commands import alert_key
from tests.bilingual import alert, recording, recording_at, wav_bytes
from tests.core.support import wait_until_complete
from tests.loudspeaker.conftest import IN_COUNTY, speaker_system

#: Box languages: Chinese then Mongolian, Mongolian then Chinese, Mongolian only.
LANGUAGES = [("zh-CN", "mn"), ("mn", "zh-CN"), ("mn",)]
BOTH, MN_FIRST, MN_ONLY = LANGUAGES_IDS = tuple(f"spk-{division}" for division in IN_COUNTY)


async def deliveries(service: BroadcasterService, alert_id: str) -> dict[str, dict[str, Any]]:
    rows = await service.database.run(service.outbox.deliveries, alert_id)
    return {row["target_id"]: row for row in rows}


def played_file(system: Any, alert_id: str, target_id: str) -> Path:
    """The file a box played for an alert (downloaded from the server, not a stored clip)."""
    box = "box-" + target_id.removeprefix("spk-")
    (record,) = system.fleet.log.completed(box_id=box, alert_id=alert_id)
    assert record.request.source == "url"
    path: Path = record.request.path
    return path


async def test_every_box_plays_what_can_be_voiced_and_names_what_cannot(tmp_path: Path) -> None:
    async with speaker_system(tmp_path, languages=LANGUAGES) as system:
        service = system.service
        ids = {}
        for name, languages, recorded in [
            ("no-mn-voice", "zh+mn", False),
            ("mn-recorded", "zh+mn", True),
            ("mn-only", "mn", False),
            ("zh-only", "zh", False),
        ]:
            sent = alert(name, languages, with_recording=recorded)
            ids[name] = (await service.submit(sent, origin="test")).alert_id, alert_key(sent)
        summaries = {
            name: await wait_until_complete(service, alert_id, timeout=90)
            for name, (alert_id, _) in ids.items()
        }
        rows = {name: await deliveries(service, alert_id) for name, (alert_id, _) in ids.items()}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{service.public_url}/metrics") as response,
        ):
            metrics = await response.text()

        # Chinese and Mongolian, no Mongolian voice: every box plays Chinese, with a warning.
        assert summaries["no-mn-voice"] == {"loudspeaker": {"confirmed": 3}}
        for row in rows["no-mn-voice"].values():
            assert row["warning"], row
            assert row["warning"].startswith("Mongolian speech not available (mn-Mong)")
            assert "supply" not in row["warning"]
        durations = {
            t: decode(played_file(system, ids["no-mn-voice"][1], t)).size for t in LANGUAGES_IDS
        }
        assert len(set(durations.values())) == 1, "every box plays the same Chinese programme"

        # With a Mongolian recording: both languages, in each box's order, no warning.
        assert summaries["mn-recorded"] == {"loudspeaker": {"confirmed": 3}}
        assert all(row["warning"] is None for row in rows["mn-recorded"].values())
        key = ids["mn-recorded"][1]
        found = {t: recording_at(played_file(system, key, t)) for t in LANGUAGES_IDS}
        assert all(score > 0.9 for _, score in found.values()), found
        assert found[MN_FIRST][0] < 8.0, "Mongolian first: right after the attention signal"
        assert found[BOTH][0] > found[MN_FIRST][0] + 5.0, "Chinese first, then Mongolian"
        assert abs(found[MN_ONLY][0] - found[MN_FIRST][0]) < 0.01
        mn_only = decode(played_file(system, key, MN_ONLY)).size
        assert mn_only < decode(played_file(system, key, BOTH)).size
        chinese = decode(played_file(system, ids["no-mn-voice"][1], BOTH))
        assert recording_at(played_file(system, ids["no-mn-voice"][1], BOTH))[1] < 0.5
        assert chinese.size < decode(played_file(system, key, BOTH)).size

        # Only Mongolian and nothing to voice it: the boxes fall back on the stored clip, and
        # the warning says what to supply.
        assert summaries["mn-only"] == {"loudspeaker": {"confirmed": 3}}
        for target_id, row in rows["mn-only"].items():
            assert "no language of the message can be voiced" in row["warning"]
            assert "supply recorded audio" in row["warning"]
            box = "box-" + target_id.removeprefix("spk-")
            (record,) = system.fleet.log.completed(box_id=box, alert_id=ids["mn-only"][1])
            assert record.request.source == "fallback:generic"
        # Counted per channel: the three Chinese-only programmes and the three stored clips.
        assert 'broadcaster_delivery_warnings{channel="loudspeaker"} 6' in metrics

        # Chinese only: Chinese everywhere, the Mongolian-only box too, and no warning.
        assert summaries["zh-only"] == {"loudspeaker": {"confirmed": 3}}
        assert all(row["warning"] is None for row in rows["zh-only"].values())


async def test_a_recording_named_by_uri_plays_only_from_the_servers_upload_store(
    tmp_path: Path,
) -> None:
    hits: list[bytes] = []

    async def elsewhere(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits.append(await reader.read(1024))  # a fetch of a URI the server must not follow
        writer.close()

    bait = await asyncio.start_server(elsewhere, "127.0.0.1", 0)
    bait_url = f"http://127.0.0.1:{bait.sockets[0].getsockname()[1]}/announcement.wav"
    async with speaker_system(tmp_path, languages=LANGUAGES) as system:
        service = system.service
        token = (tmp_path / "data" / "api-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "audio/wav"}
        async with aiohttp.ClientSession() as http:
            url = f"{service.public_url}/api/v1/uploads"
            async with http.post(url, data=wav_bytes(recording()), headers=headers) as answer:
                assert answer.status == 201
                uploaded = await answer.json()
            text = {**headers, "Content-Type": "text/plain"}
            async with http.post(url, data=b"not audio", headers=text) as refused:
                assert refused.status == 415
            async with http.post(url, data=b"x", headers={"Content-Type": "audio/wav"}) as anon:
                assert anon.status == 401
        assert uploaded["uri"].startswith(service.public_url + "/api/v1/uploads/")
        sent = {}
        for name, uri in (("by-upload", uploaded["uri"]), ("by-url", bait_url)):
            made = alert(name, "zh+mn")
            resource = Resource(resource_desc="ᠳᠠᠭᠤ", mime_type="audio/wav", uri=uri)
            made.infos[1].resources = [resource]
            accepted = await service.submit(made, origin="test")
            await wait_until_complete(service, accepted.alert_id, timeout=90)
            sent[name] = accepted.alert_id, alert_key(made)
        rows = {name: await deliveries(service, alert_id) for name, (alert_id, _) in sent.items()}
    bait.close()
    await bait.wait_closed()

    assert all(
        r["state"] == "confirmed" and r["warning"] is None for r in rows["by-upload"].values()
    )
    at, score = recording_at(played_file(system, sent["by-upload"][1], MN_FIRST))
    assert score > 0.9 and at < 8.0
    assert hits == [], "the server fetched an address outside its own upload store"
    for row in rows["by-url"].values():
        assert row["state"] == "confirmed"
        assert row["warning"].startswith("Mongolian speech not available (mn-Mong)")
