"""Bilingual warnings on loudspeaker boxes through the real core, channel, HTTP server and box
agents: each box plays one programme of the languages it serves, in its order; a language
nothing can voice is left out with a warning on the delivery, never a failure, unless no
language of the alert can be voiced at all. A recording the alert carries is found in the
file the box played (cross-correlation of decoded PCM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from audio.pcm import decode
from broadcaster.service import BroadcasterService
from channels.loudspeaker.commands import alert_key
from tests.bilingual import alert, recording_at
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

        # Only Mongolian and nothing to voice it: the stored clip plays, and the warning says
        # what to supply.
        assert summaries["mn-only"] == {"loudspeaker": {"confirmed": 3}}
        for target_id, row in rows["mn-only"].items():
            assert "no language of the message can be voiced" in row["warning"]
            assert "supply recorded audio" in row["warning"]
            box = "box-" + target_id.removeprefix("spk-")
            (record,) = system.fleet.log.completed(box_id=box, alert_id=ids["mn-only"][1])
            assert record.request.source == "clip"
        # Counted per channel: the three Chinese-only programmes and the three stored clips.
        assert 'broadcaster_delivery_warnings{channel="loudspeaker"} 6' in metrics

        # Chinese only: Chinese everywhere, the Mongolian-only box too, and no warning.
        assert summaries["zh-only"] == {"loudspeaker": {"confirmed": 3}}
        assert all(row["warning"] is None for row in rows["zh-only"].values())
