"""The officer's whole path in headless Chromium (Debian's, driven by Playwright): log in as a
drafter, compose from a template, preview (SMS segments; no sound from channels that play
none), submit; log in as an approver and approve; watch the board reach all-confirmed; then
cancel an alert mid-delivery and see the Cancel on the board. Screenshots of each step go to
``test-artifacts/console/``.

The first alert goes to loudspeaker-like devices that accept each command and acknowledge it
later; the second goes through the real SMS channel to an AT-modem simulator on a pty (status
reports confirm each message), rate-limited so that the Cancel lands mid-delivery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from drivers.gsm.simulator import AtModemSimulator, ModemSimulatorConfig
from drivers.gsm.simulator_network import SimulatedNetwork
from tests.conftest import REPO
from tests.console.support import (
    COUNTY,
    PASSWORDS,
    ConsoleServer,
    console_config,
    console_server,
    demo_targets,
)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "console"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture
def modem(tmp_path: Path) -> Iterator[AtModemSimulator]:
    network = SimulatedNetwork()
    simulator = AtModemSimulator(
        ModemSimulatorConfig(name="sim0", link_path=str(tmp_path / "ttysim0")), network
    )
    simulator.start()
    yield simulator
    simulator.stop()
    network.stop()


@pytest.fixture
async def server(tmp_path: Path, modem: AtModemSimulator) -> AsyncIterator[ConsoleServer]:
    sms = {
        "type": "channels.sms:SmsChannel",
        "modems": [{"name": "sim0", "port": str(tmp_path / "ttysim0"), "segments_per_minute": 240}],
        "signature": "【乌兰察布市应急管理局】",
        "confirm_timeout_seconds": 10,
    }
    speaker = {"type": "tests.console.support:BoxChannel", "display_name": "村村响音箱"}
    channels = {"speaker": speaker, "village-sms": sms}
    phones = [
        t | {"address": f"+86100{n:08d}"}
        for n, t in enumerate(demo_targets("village-sms", suffix="信息员"))
    ]
    async with console_server(
        console_config(tmp_path, channels, demo_targets("speaker") + phones)
    ) as running:
        yield running


@asynccontextmanager
async def chromium_page(profile: Path, extra_flags: Sequence[str] = ()) -> AsyncIterator[Page]:
    """A page of headless Chromium with a fresh profile in ``profile``."""
    assert CHROMIUM.exists(), "Debian's chromium is required (scripts/apt-packages.txt)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*FLAGS, *extra_flags],
            viewport={"width": 1366, "height": 900},
            locale="zh-CN",
        )
        context.set_default_timeout(30_000)
        expect.set_options(timeout=15_000)  # the machine may be busy with other suites
        try:
            yield context.pages[0] if context.pages else await context.new_page()
        finally:
            await context.close()


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    async with chromium_page(tmp_path / "profile") as opened:
        yield opened


async def _shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def _login(page: Page, base: str, username: str) -> None:
    await page.goto(base)
    await expect(page.locator("#login-form")).to_be_visible()
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORDS[username])
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#officer-name")).to_contain_text(username.title())


async def _logout(page: Page) -> None:
    await page.click("form[action$='/logout'] button")
    await expect(page.locator("#login-form")).to_be_visible()


async def _compose(page: Page, base: str, channel: str, area: str) -> None:
    await page.goto(base + "compose")
    await page.select_option("#hazard", "blizzard")
    await page.click("button[data-level=orange]")
    await page.check(f"input[name=division][value='{area}']")
    for box in await page.locator("input[name=channel]").all():
        if await box.get_attribute("value") != channel:
            await box.uncheck()
    await expect(page.locator("#severity")).to_have_value("Severe")
    await expect(page.locator("[name='zh-CN.headline']")).to_have_value("卓资县暴雪橙色预警")


async def _approve_first_pending(page: Page, base: str) -> None:
    await page.goto(base + "approvals")
    await page.click("#approvals a.button")
    await page.fill("#reason", "已核实")
    await page.click("#approve")
    await expect(page.locator("#approval-state")).to_have_attribute("data-state", "approved")


@pytest.mark.timeout(300)  # a real browser, speech synthesis and a modem on a loaded machine
async def test_officer_path_compose_preview_approve_confirm_cancel(
    server: ConsoleServer, page: Page
) -> None:
    base = server.url
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await _login(page, base, "drafter")
    nav = page.locator("header nav a").first
    await expect(nav.locator(".zh")).to_be_visible()
    await expect(nav.locator(".en")).to_be_hidden()
    await page.click("#lang-toggle")
    await expect(nav.locator(".en")).to_have_text("Alerts")
    await expect(nav.locator(".zh")).to_be_hidden()
    await _shot(page, "01-logged-in-english")
    await page.click("#lang-toggle")
    await expect(nav.locator(".zh")).to_be_visible()

    await _compose(page, base, "speaker", COUNTY)
    await page.click("#draw")
    box = await page.locator("#map").bounding_box()
    assert box is not None
    for fx, fy in ((0.3, 0.3), (0.6, 0.3), (0.45, 0.6)):
        await page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
    corners = (await page.input_value("#polygon")).split()
    assert len(corners) == 3 and all(41 < float(c.split(",")[0]) < 43 for c in corners)
    # The drawn area is named after the counties it covers, in the headline residents read.
    await expect(page.locator("#polygon")).to_have_attribute("data-named", "1")
    headline = await page.input_value("#zh-CN\\.headline")
    assert headline.startswith("卓资县、") and "部分地区" in headline, headline
    await _shot(page, "02-compose")
    await page.click("#clear-polygon")
    await expect(page.locator("#polygon")).to_have_value("")
    await page.click("#preview-button")
    speaker_targets = len(demo_targets("speaker"))
    row = page.locator("#preview-targets tr[data-channel=speaker] td")
    await expect(row.nth(1)).to_have_text(str(speaker_targets))
    await expect(row.nth(2).locator(".zh")).to_have_text("个目标")
    await expect(page.locator("#preview-channels article[data-channel=speaker]")).to_contain_text(
        "卓资县暴雪橙色预警"
    )
    # These boxes are stand-ins that play nothing, so the preview offers no sound for them
    # (the real boxes' previews: test_audio_preview.py).
    status = page.locator("#audio-status")
    await expect(status).to_have_attribute("data-ready", "1", timeout=120_000)
    await expect(status.locator(".zh")).to_have_text("所选渠道没有可试听的语音")
    await expect(page.locator("#preview-audio audio")).to_have_count(0)
    await _shot(page, "03-preview")
    await page.click("#submit")
    await expect(page.locator("#approval-state")).to_have_attribute("data-state", "pending")
    await expect(page.locator("#approve")).to_have_count(0)  # a drafter cannot approve
    await _shot(page, "04-submitted")
    await _logout(page)

    await _login(page, base, "approver")
    await _approve_first_pending(page, base)
    await expect(page.locator("body[data-complete='1']")).to_have_count(1, timeout=60_000)
    row = page.locator("#counts tr[data-channel=speaker]")
    await expect(row.locator("td[data-state=confirmed]")).to_have_text(str(speaker_targets))
    await expect(row.locator("td[data-state=failed]")).to_have_text("0")
    await page.click("#targets tbody tr >> nth=0")
    await expect(page.locator("#events li")).to_have_count(4)
    await _shot(page, "05-all-confirmed")
    await _logout(page)

    # A second alert on the rate-limited channel, cancelled while deliveries are under way.
    await _login(page, base, "drafter")
    await _compose(page, base, "village-sms", COUNTY)
    await page.click("#preview-button")
    sms_row = page.locator("#preview-targets tr[data-channel=village-sms] td")
    await expect(sms_row.nth(2).locator(".zh")).to_have_text("人")
    sms_preview = page.locator("#preview-channels article[data-channel=village-sms]")
    await expect(sms_preview.locator(".field-encoding").first).to_have_text("UCS-2")
    await expect(sms_preview.locator(".field-text").first).to_contain_text("【")
    await page.click("#submit")
    await expect(page.locator("#approval-state")).to_have_attribute("data-state", "pending")
    await _logout(page)
    await _login(page, base, "approver")
    await _approve_first_pending(page, base)
    row = page.locator("#counts tr[data-channel=village-sms]")
    await expect(row.locator("td[data-state=confirmed]")).not_to_have_text("0", timeout=30_000)
    await _shot(page, "06-mid-delivery")
    await page.fill("#cancel-reason", "降雪减弱，解除预警")
    await page.click("#cancel")
    await expect(page.locator("#alert-state .badge")).to_have_attribute("data-state", "cancelled")
    await expect(page.locator("#followers a[data-msg-type=Cancel]")).to_have_count(1)
    await expect(row.locator("td[data-state=cancelled]")).not_to_have_text("0")
    await expect(page.locator("#cancel")).to_have_count(0)
    await page.click(".filters button[data-filter=cancelled]")
    first = page.locator("#targets tbody tr").first
    await expect(first.locator("td[data-state=cancelled]")).to_have_count(1)
    await _shot(page, "07-cancelled")
    await page.set_viewport_size({"width": 820, "height": 1180})
    await _shot(page, "08-tablet-board")
    # Everything the pages loaded came from this server: no CDN, no fonts from elsewhere.
    origin = base.split("/console/")[0]
    assert requested and all(url.startswith(origin) for url in requested), [
        url for url in requested if not url.startswith(origin)
    ]
