"""The console's audio preview is what the loudspeakers will play, in every language they speak,
in headless Chromium against the demo configuration's real loudspeaker channel and simulated
boxes.

A drafter composes a Chinese and Mongolian blizzard warning for 集宁区 (boxes that speak
zh-CN) and 察哈尔右翼前旗 (boxes that speak zh-CN and mn), gives the Mongolian its voice (a
recording: no synthesiser here speaks Mongolian, and the send plays the recording) and
previews. The preview offers the two programmes the boxes will get, one player per language
each speaks (Chinese in both, Mongolian in the banner's), each playing from where its language
starts; the bytes the browser loads hash to the SHA-256 the preview shows, and nothing was
published where a box could fetch it. Approved, the alert reaches every box, and the files the
channel published and the boxes played are exactly the previewed ones. Without a recording the
preview says that the Mongolian is left out, as the deliveries then do, and that an exercise's
audio speaks its marker.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from broadcaster.cap import from_json
from channels.loudspeaker import LoudspeakerChannel
from channels.loudspeaker.commands import alert_key
from tests.console.support import ConsoleClient, ConsoleServer, compose_form, demo_server
from tests.console.test_browser import (
    _approve_first_pending,
    _login,
    _logout,
    _shot,
    chromium_page,
)
from tests.console.test_recorded_voice import compose_with_mongolian_file
from tests.core.support import wait_until_complete

CITY = "150902"  # 集宁区: its boxes speak zh-CN
BANNER = "150926"  # 察哈尔右翼前旗: its boxes speak zh-CN and mn
BOXES = 2

#: Play a language's player for a moment; where it played, and the SHA-256 of what it loaded.
_HEAR = """async (player) => {
    if (player.readyState < 1) {
        await new Promise((done) => player.addEventListener('loadedmetadata', done, {once: true}));
    }
    await player.play();
    await new Promise((done) => setTimeout(done, 300));
    const seen = {time: player.currentTime, error: player.error && player.error.code};
    player.pause();
    const loaded = await fetch(player.currentSrc, {credentials: 'same-origin'});
    const bytes = await loaded.arrayBuffer();
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    seen.sha256 = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
    return seen;
}"""


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[ConsoleServer]:
    async with demo_server(tmp_path, (CITY, BANNER), BOXES) as running:
        yield running


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    async with chromium_page(tmp_path / "profile") as opened:
        yield opened


def _loudspeaker(demo: ConsoleServer) -> LoudspeakerChannel:
    channel = demo.service.channels["loudspeaker"]
    assert isinstance(channel, LoudspeakerChannel)
    return channel


def _published(demo: ConsoleServer) -> set[str]:
    """The audio a box can fetch from the channel: the SHA-256 names of its published files."""
    directory = _loudspeaker(demo).library.directory
    if not directory.exists():
        return set()
    return {p.name.split(".")[0] for p in directory.iterdir() if p.suffix in (".mp3", ".opus")}


async def _previewed(page: Page) -> dict[str, list[str]]:
    """The previewed programmes by SHA-256, each with the languages it offers in order; every
    language's player played its own part of bytes that hash to the programme's SHA-256."""
    await page.click("#preview-button")
    await expect(page.locator("#audio-status")).to_have_attribute(
        "data-ready", "1", timeout=120_000
    )
    programmes: dict[str, list[str]] = {}
    for article in await page.locator("#preview-audio article.programme").all():
        sha256 = await article.get_attribute("data-sha256")
        assert sha256 is not None
        programmes[sha256] = []
        for item in await article.locator("ul.languages li").all():
            language = await item.get_attribute("data-lang")
            assert language is not None
            programmes[sha256].append(language)
            heard: dict[str, Any] = await item.locator("audio.language-audio").evaluate(_HEAR)
            start, end = await item.locator("audio").evaluate(
                "(a) => a.currentSrc.split('#t=')[1].split(',').map(Number)"
            )
            assert heard["error"] is None and heard["sha256"] == sha256, heard
            assert start > 2.5 and start <= heard["time"] <= end + 0.3, (start, end, heard)
    return programmes


@pytest.mark.timeout(300)  # a real browser, speech synthesis and simulated boxes
async def test_every_language_the_boxes_speak_is_previewed_as_they_will_play_it(
    demo: ConsoleServer, page: Page
) -> None:
    base = demo.url
    await _login(page, base, "drafter")
    await compose_with_mongolian_file(page, base, (CITY, BANNER))
    programmes = await _previewed(page)
    await _shot(page, "audio-preview-bilingual")
    assert sorted(programmes.values()) == [["zh-CN"], ["zh-CN", "mn"]], programmes
    assert _published(demo) == set(), "the preview published audio the boxes can fetch"
    await page.click("#submit")
    await expect(page.locator("#approval-state")).to_have_attribute("data-state", "pending")
    alert_id = page.url.rstrip("/").rsplit("/", 1)[1]
    await _logout(page)
    await _login(page, base, "approver")
    await _approve_first_pending(page, base)

    service = demo.service
    summary = await wait_until_complete(service, alert_id, timeout=180)
    assert summary == {"loudspeaker": {"confirmed": 2 * BOXES}}
    assert _published(demo) == set(programmes)
    rows = await service.database.run(service.outbox.deliveries, alert_id)
    assert {row["content"]["audio"] for row in rows} == set(programmes)
    sent = from_json(await service.database.run(service.alerts.document, alert_id))
    fleet = _loudspeaker(demo).fleet
    assert fleet is not None
    played = fleet.log.completed(alert_id=alert_key(sent))
    assert len({r.request.box_id for r in played}) == 2 * BOXES
    assert {hashlib.sha256(r.request.path.read_bytes()).hexdigest() for r in played} == set(
        programmes
    )


async def test_a_language_nothing_voices_is_named_in_the_audio_preview_of_an_exercise(
    demo: ConsoleServer,
) -> None:
    client = ConsoleClient(demo)
    try:
        await client.login("drafter")
        await client.get("/console/compose")
        form = compose_form(
            divisions=[f"{BANNER}000000"], channels=["loudspeaker"], status="Exercise"
        )
        form += [("lang", "mn"), ("mn.event", "ᠴᠠᠰᠤᠨ"), ("mn.headline", "ᠴᠠᠰᠤᠨ ᠰᠢᠭᠤᠷᠭ᠎ᠠ")]
        headers = {"Accept": "application/json", "X-CSRF-Token": client.csrf}
        status, text = await client.post("/console/compose/audio", form, headers=headers)
    finally:
        await client.close()
    assert status == 200, text
    body = json.loads(text)
    (programme,) = body["programmes"]
    assert [part["language"] for part in programme["languages"]] == ["zh-CN"]
    (warning,) = programme["warnings"]
    assert warning.startswith("Mongolian speech not available (mn)"), warning
    assert programme["targets"] == BOXES and programme["unit_name"]["en"] == "boxes"
    assert programme["marker"] is True  # an exercise says so in the audio
    assert _published(demo) == set()
