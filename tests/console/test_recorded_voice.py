"""The officer's Mongolian voice, end to end in headless Chromium with a fake microphone.

Chromium's fake capture device plays a WAV made here (the chirp of :mod:`tests.bilingual`, a
sound no synthesiser makes) as the microphone. A drafter composes a Chinese and Mongolian
blizzard warning for 察哈尔右翼前旗 (a banner whose boxes speak zh-CN and mn), records the
Mongolian with that microphone, previews it (the recording's player loads); an approver opens
the review, plays the recording and approves; the demo configuration's simulated loudspeaker
boxes then play the warning, and the chirp is found in the file they played (normalised
cross-correlation of the decoded PCM), after the Chinese warning.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, expect

from broadcaster.cap import from_json
from channels.loudspeaker import LoudspeakerChannel
from channels.loudspeaker.commands import alert_key
from tests.bilingual import RECORDING_S, recording, recording_at, wav_bytes
from tests.console.support import ConsoleServer, demo_server
from tests.console.test_browser import _login, _logout, _shot, chromium_page
from tests.console.test_recordings import tone_wav
from tests.core.support import wait_until_complete

BANNER = "150926"  # 察哈尔右翼前旗: its villages' boxes speak zh-CN and mn
BOXES = 3
RECORD_S = 2.5 * RECORDING_S  # the fake microphone loops the chirp: one whole copy at least


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[ConsoleServer]:
    async with demo_server(tmp_path, (BANNER,), BOXES) as running:
        yield running


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    """Chromium whose microphone plays the chirp (the fake capture device loops the file)."""
    microphone = tmp_path / "microphone.wav"
    microphone.write_bytes(wav_bytes(recording()))
    flags = (
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}",
    )
    async with chromium_page(tmp_path / "profile", flags) as opened:
        yield opened


_PLAY = """async (player) => {
    if (player.readyState < 1) {
        await new Promise((done) => player.addEventListener('loadedmetadata', done, {once: true}));
    }
    await player.play();
    await new Promise((done) => setTimeout(done, 300));
    const seen = {duration: player.duration, time: player.currentTime, error: player.error};
    player.pause();
    return seen;
}"""


async def compose_with_mongolian_file(page: Page, base: str, areas: Sequence[str]) -> Locator:
    """Compose a Chinese and Mongolian blizzard warning for ``areas`` (codes of 6 digits) on the
    loudspeakers alone, its Mongolian voiced by an uploaded file (a plain tone); the recorder."""
    await page.goto(base + "compose")
    await page.select_option("#hazard", "blizzard")
    await page.click("button[data-level=orange]")
    for area in areas:
        await page.check(f"input[name=division][value='{area}000000']")
    for box in await page.locator("input[name=channel]").all():
        if await box.get_attribute("value") != "loudspeaker":
            await box.uncheck()
    await page.check("#lang-mn")
    await expect(page.locator("[name='mn.headline']")).not_to_have_value("")
    # Chinese and English have a voice, so only Mongolian offers a recorder.
    await expect(page.locator(".recorder")).to_have_count(1)
    recorder = page.locator(".recorder[data-lang=mn]")
    await recorder.locator(".record-file").set_input_files(
        files=[{"name": "tone.wav", "mimeType": "audio/wav", "buffer": tone_wav()}]
    )
    await expect(recorder).to_have_attribute("data-ready", "1", timeout=60_000)
    return recorder


async def _record_mongolian(page: Page, base: str) -> None:
    # A file first, then the officer records over it with the microphone.
    recorder = await compose_with_mongolian_file(page, base, (BANNER,))
    from_file = await page.input_value("[name='mn.recording']")
    await recorder.locator(".record-start").click()
    await expect(recorder).to_have_attribute("data-recording", "1")
    await expect(recorder).to_have_attribute("data-ready", "")
    await page.wait_for_timeout(RECORD_S * 1000)
    await recorder.locator(".record-stop").click()
    await expect(recorder).to_have_attribute("data-ready", "1", timeout=60_000)
    uri = await page.input_value("[name='mn.recording']")
    assert "/api/v1/uploads/" in uri and uri != from_file
    heard = await recorder.locator(".record-player").evaluate(_PLAY)
    assert heard["error"] is None and heard["duration"] > RECORD_S - 0.5


@pytest.mark.timeout(300)  # a real browser, speech synthesis and simulated boxes
async def test_a_recorded_mongolian_voice_is_reviewed_and_played_by_the_boxes(
    demo: ConsoleServer, page: Page
) -> None:
    base = demo.url
    await _login(page, base, "drafter")
    await _record_mongolian(page, base)
    await page.click("#preview-button")
    previewed = page.locator("#preview-recording-list audio[data-lang=mn]")
    await expect(previewed).to_have_count(1)
    heard = await previewed.evaluate(_PLAY)
    assert heard["error"] is None and heard["duration"] > RECORD_S - 0.5
    await _shot(page, "recorded-voice-preview")
    await page.click("#submit")
    await expect(page.locator("#approval-state")).to_have_attribute("data-state", "pending")
    alert_id = page.url.rstrip("/").rsplit("/", 1)[1]
    await _logout(page)

    await _login(page, base, "approver")
    await page.goto(base + f"alerts/{alert_id}")
    review = page.locator("audio.recording-player[data-lang=mn]")
    await expect(review).to_have_count(1)
    heard = await review.evaluate(_PLAY)
    assert heard["error"] is None and heard["duration"] > RECORD_S - 0.5 and heard["time"] > 0
    await _shot(page, "recorded-voice-review")
    await page.fill("#reason", "已核实录音")
    await page.click("#approve")
    await expect(page.locator("#approval-state")).to_have_attribute("data-state", "approved")

    service = demo.service
    summary = await wait_until_complete(service, alert_id, timeout=180)
    assert summary == {"loudspeaker": {"confirmed": BOXES}}
    document = await service.database.run(service.alerts.document, alert_id)
    sent = from_json(document)
    channel = service.channels["loudspeaker"]
    assert isinstance(channel, LoudspeakerChannel) and channel.fleet is not None
    completed = channel.fleet.log.completed(alert_id=alert_key(sent))
    played = {r.request.box_id: r.request.path for r in completed}
    assert len(played) == BOXES and len(set(played.values())) == 1, "one programme for all"
    at, score = recording_at(next(iter(played.values())))
    # Two Opus encodings (browser, store) and the boxes' MP3 lie between the microphone and
    # the box; a chirp survives them, speech or silence scores far lower.
    print(f"recording found at {at:.2f} s, correlation {score:.3f}")
    assert score > 0.8, score
    assert at > 5.0, "the Mongolian recording plays after the Chinese warning"
