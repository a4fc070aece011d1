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

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from broadcaster.api.app import make_app
from broadcaster.auth import OfficerStore, Role
from broadcaster.cap import from_json
from broadcaster.service import BroadcasterService
from channels.loudspeaker import LoudspeakerChannel
from channels.loudspeaker.commands import alert_key
from tests.bilingual import RECORDING_S, recording, recording_at, wav_bytes
from tests.console.support import PASSWORDS
from tests.console.test_browser import _login, _logout, _shot, chromium_page
from tests.console.test_recordings import tone_wav
from tests.core.support import wait_until_complete
from tests.core.test_demo_bilingual import demo_config

BANNER = "150926"  # 察哈尔右翼前旗: its villages' boxes speak zh-CN and mn
BOXES = 3
RECORD_S = 2.5 * RECORDING_S  # the fake microphone loops the chirp: one whole copy at least


class RunningDemo:
    def __init__(self, service: BroadcasterService, server: TestServer) -> None:
        self.service = service
        self.server = server
        self.url = str(server.make_url("/console/"))


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[RunningDemo]:
    sink = tmp_path / "sink"
    sink.mkdir()
    config, targets = demo_config(tmp_path, sink, (BANNER,), boxes_per_area=BOXES)
    boxes = [t["address"] for t in targets if t["channel"] == "loudspeaker"]
    assert len(boxes) == BOXES
    service = BroadcasterService(config)
    server = TestServer(make_app(service), host="127.0.0.1", port=config.server.port)
    await server.start_server()
    try:
        officers = OfficerStore(service.database, config.console)
        for role in (Role.DRAFTER, Role.APPROVER):
            await officers.create(role.value, PASSWORDS[role.value], role, role.value.title())
        channel = service.channels["loudspeaker"]
        assert isinstance(channel, LoudspeakerChannel)
        await channel.wait_online(boxes, 60)
        yield RunningDemo(service, server)
    finally:
        await server.close()


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


async def _record_mongolian(page: Page, base: str) -> None:
    await page.goto(base + "compose")
    await page.select_option("#hazard", "blizzard")
    await page.click("button[data-level=orange]")
    await page.check(f"input[name=division][value='{BANNER}000000']")
    for box in await page.locator("input[name=channel]").all():
        if await box.get_attribute("value") != "loudspeaker":
            await box.uncheck()
    await page.check("#lang-mn")
    await expect(page.locator("[name='mn.headline']")).not_to_have_value("")
    # Chinese and English have a voice, so only Mongolian offers a recorder.
    await expect(page.locator(".recorder")).to_have_count(1)
    recorder = page.locator(".recorder[data-lang=mn]")
    # A file first (a plain tone), then the officer records over it with the microphone.
    await recorder.locator(".record-file").set_input_files(
        files=[{"name": "tone.wav", "mimeType": "audio/wav", "buffer": tone_wav()}]
    )
    await expect(recorder).to_have_attribute("data-ready", "1", timeout=60_000)
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
    demo: RunningDemo, page: Page
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
