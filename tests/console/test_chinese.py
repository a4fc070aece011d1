"""The console in Chinese: a warning officer's pages (login, alert list, compose, preview, alert
board, approvals, schedules, a test report, devices, audit, officers and tokens) show no
Latin-script word outside an allow-list of proper names and codes, in headless Chromium (the
fixtures of test_browser); what a device reported itself (``data-raw``) is evidence, kept as
received."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from broadcaster.cap import Status
from broadcaster.console.catalogue import run_detail
from broadcaster.console.devicewords import target_detail
from tests.console.support import ConsoleServer, console_config, console_server, demo_targets
from tests.console.test_browser import (  # noqa: F401 (fixtures)
    _approve_first_pending,
    _compose,
    _login,
    _logout,
    modem,
    page,
    server,
)
from tests.core.support import make_alert

ALLOWED = {
    # protocols, formats and codes officers know by these names
    *("CAP", "SMS", "FM", "RDS", "PS", "RT", "PTY", "API", "URL", "XML", "JSON", "ID"),
    *("UCS-2", "GSM-7", "SHA-256", "TTS", "UTC", "PDF", "CSV", "HTTP", "HTTPS"),
    # languages named in their own script, and their codes
    *("English", "zh-CN", "en", "mn"),
    # the toggle, and the test's officers (usernames and display names are theirs to choose)
    *("EN", "admin", "drafter", "approver", "viewer", "Admin", "Drafter", "Approver", "Viewer"),
    # speech engines and an API client configured by those names
    *("espeak-ng", "edge-tts", "county-feed"),
    # a scheduled test's name, chosen by the operator
    "weekly-silent",
}
_TOKEN = re.compile(r"[A-Za-z0-9_.:/@+\-]+")


def latin_words(text: str) -> list[str]:
    """Tokens with Latin letters that are neither allowed nor codes (digits, URLs, e-mail)."""
    found = []
    for token in _TOKEN.findall(text):
        token = token.strip(".:-/+")
        if not re.search("[A-Za-z]", token) or token in ALLOWED:
            continue
        if re.search("[0-9]", token) or "/" in token or "@" in token:
            continue  # identifiers, codes, times, paths and addresses
        found.append(token)
    return found


async def _check(
    shown: Page, name: str, problems: dict[str, list[str]], *, public: bool = False
) -> None:
    # A device's own error text ([data-raw]) is evidence shown as received, beside its label.
    # Public pages carry Chinese and English side by side: English marked lang="en" (and an
    # alert's own English info) is that parallel text; their titles and attributes hold both.
    hidden = "[data-raw], body [lang^=en]" if public else "[data-raw]"
    text = await shown.evaluate(
        """([hidden, public]) => {
            const raw = [...document.querySelectorAll(hidden)];
            raw.forEach(e => { e.style.display = 'none'; });
            const attributes = public ? [] :
              [...document.querySelectorAll('[placeholder],[title],[aria-label]')]
                .filter(e => e.checkVisibility())
                .map(e => [e.placeholder, e.title, e.getAttribute('aria-label')].join(' '));
            const text = [public ? '' : document.title, document.body.innerText, ...attributes]
              .join('\\n');
            raw.forEach(e => { e.style.display = ''; });
            return text;
        }""",
        [hidden, public],
    )
    words = latin_words(text)
    if words:
        problems[name] = sorted(set(words))


def test_the_filter_lets_codes_through_and_catches_words() -> None:
    text = (
        "预警 CAP 1.2 · a4607dbeb2322e88d10b · 2026-12-06 09:30 UTC+08:00 · queued · https://x.cn/a"
    )
    assert latin_words(text) == ["queued"]


def test_reports_are_labelled_and_a_devices_own_words_kept() -> None:
    assert target_detail("channel healthy") == (("渠道正常", "channel healthy"), "")
    assert target_detail("failed: not confirmed") == (("失败：未确认", "failed: not confirmed"), "")
    assert target_detail("failed: box 7 did not answer") == (
        ("失败", "failed"),
        "box 7 did not answer",
    )
    assert target_detail("box 7 online over tcp, idle") == (None, "box 7 online over tcp, idle")
    missed = (
        "2 run(s) missed while the server was down, the last due at 09:00;"
        " past the grace time of 30 min"
    )
    assert "错过 2 次运行" in str(run_detail(missed))
    assert run_detail("probe failed: OSError") is None


@pytest.mark.timeout(300)
async def test_every_page_an_officer_uses_is_chinese(
    server: ConsoleServer,  # noqa: F811 (the fixture)
    page: Page,  # noqa: F811 (the fixture)
) -> None:
    base = server.url
    problems: dict[str, list[str]] = {}
    await page.goto(base)
    await _check(page, "login", problems)
    await _login(page, base, "drafter")
    await _check(page, "alert list (empty)", problems)
    await _compose(page, base, "speaker", "150921000000")
    await page.check("input[name=channel][value=village-sms]")
    await page.fill("[name='zh-CN.headline']", "")
    await page.click("#preview-button")
    await expect(page.locator("#problem-list li").first).to_be_visible()
    await _check(page, "compose with problems", problems)
    await page.fill("[name='zh-CN.headline']", "卓资县暴雪橙色预警")
    await page.click("#preview-button")
    await expect(page.locator("#preview-channels article")).to_have_count(2)
    await _check(page, "compose and preview", problems)
    # A text too long for the SMS budget: the channel's note (its own words) under a label.
    description = page.locator("[name='zh-CN.description']")
    written = await description.input_value()
    await description.fill("预计降雪量将达十毫米以上，" * 60)
    await page.click("#preview-button")
    note = page.locator("#preview-channels article[data-channel=village-sms] .hint").first
    await expect(note.locator("[data-raw]")).to_contain_text("shortened")
    await expect(note.locator(".zh")).to_have_text("渠道提示：")
    await _check(page, "preview with a channel note", problems)
    await description.fill(written)
    await page.click("#submit")
    await expect(page.locator("#approval-state")).to_be_visible()
    await _check(page, "alert board (pending)", problems)
    await _logout(page)
    await _login(page, base, "admin")
    await page.goto(base + "approvals")
    await _check(page, "approvals", problems)
    await _approve_first_pending(page, base)
    confirmed = page.locator("#counts tr[data-channel=speaker] td[data-state=confirmed]")
    await expect(confirmed).not_to_have_text("0", timeout=30_000)
    await _check(page, "alert board (delivered)", problems)
    await page.fill("#cancel-reason", "降雪减弱，解除预警")
    await page.click("#cancel")
    await expect(page.locator("#alert-state .badge")).to_be_visible()
    await _check(page, "alert board (cancelled)", problems)
    await page.click("#followers a")
    await _check(page, "alert board of the Cancel", problems)
    await page.goto(base)
    await _check(page, "alert list", problems)
    weekly = {"name": "weekly-silent", "kind": "silent", "cron": "0 9 * * 1"}
    scheduler = server.service.operations.scheduler
    await scheduler.create(weekly | {"channels": ["speaker"]}, by="test")
    run_id = await scheduler.run_now("weekly-silent")
    await page.goto(f"{base}tests/{run_id}")
    await expect(page.locator("#run-targets tbody tr").first).to_be_visible()
    await expect(page.locator(".meta .badge")).not_to_have_attribute(
        "data-state", "running", timeout=30_000
    )
    await page.reload()
    await _check(page, "test report", problems)
    for path, name in (
        ("tests", "schedules"),
        ("devices", "devices"),
        ("audit", "audit log"),
        ("users", "officers"),
        ("tokens", "API tokens"),
    ):
        await page.goto(base + path)
        await _check(page, name, problems)
    assert problems == {}, "\n".join(f"{page}: {' '.join(w)}" for page, w in problems.items())
    # Toggled, the same catalogue speaks English, options and placeholders included.
    await page.goto(base)
    await page.click("#lang-toggle")
    await expect(page.locator("select[name=state] option").nth(1)).to_have_text("active")
    await expect(page.locator("input[name=q]")).to_have_attribute(
        "placeholder", "headline, event or identifier"
    )
    await expect(page.locator("#history .badge .en").first).to_be_visible()
    await expect(page.locator("#history .badge .zh").first).to_be_hidden()
    await page.click("#lang-toggle")
    await expect(page.locator("select[name=state] option").nth(1)).to_have_text("生效中")


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[ConsoleServer]:
    webpush = {
        "type": "webpush",
        "vapid_subject": "mailto:duty@example.cn",
        "allow_http_endpoints": True,
        "allow_private_endpoints": True,
    }
    channels = {"speaker": {"type": "tests.console.support:BoxChannel"}, "webpush": webpush}
    config = console_config(tmp_path, channels, demo_targets("speaker"))
    async with console_server(config) as running:
        yield running


@pytest.mark.timeout(300)
async def test_public_pages_and_the_subscription_page_are_chinese(
    site: ConsoleServer,
    page: Page,  # noqa: F811 (the fixture)
) -> None:
    root = str(site.server.make_url("/"))
    zh = make_alert("exercise-1", status=Status.EXERCISE)
    en = replace(
        zh.infos[0],
        language="en-US",
        headline="Orange blizzard warning for Zhuozi (exercise)",
        instruction="Stay indoors and keep warm.",
        description="More than 10 mm of snow expected in 12 hours.",
    )
    exercise = await site.service.submit(replace(zh, infos=[zh.infos[0], en]), origin="test")
    actual = await site.service.submit(make_alert("actual-2"), origin="test")
    await site.service.cancel(actual.alert_id, reason="解除", origin="test")
    problems: dict[str, list[str]] = {}
    await page.goto(root + "alerts")
    await expect(page.locator(".alert-list li .tag")).to_have_count(1)
    await _check(page, "public list", problems, public=True)
    await page.goto(f"{root}alerts/{exercise.alert_id}")
    await expect(page.locator("article.info")).to_have_count(2)
    await expect(page.locator(".facts dd").last).to_contain_text("严重 · 立即 · 很可能")
    await _check(page, "public exercise alert", problems, public=True)
    await page.goto(f"{root}alerts/{actual.alert_id}")
    await expect(page.locator(".banner.state")).to_be_visible()
    await _check(page, "public cancelled alert", problems, public=True)
    await page.goto(root + "alerts/no-such-alert")
    await _check(page, "public not found", problems, public=True)
    await page.goto(root + "channels/webpush/")
    await expect(page.locator("body")).not_to_have_attribute("data-state", "loading")
    # The browser's own check stops an empty form; the page's check is behind it.
    await page.evaluate(
        "document.getElementById('subscribe-form')"
        ".dispatchEvent(new Event('submit', {cancelable: true}))"
    )
    await expect(page.locator("#status")).to_contain_text("请选择旗县")
    await expect(page.locator("#status span[lang=en]")).to_have_text("Please choose a county.")
    await page.select_option("#county", label="卓资县")
    await expect(page.locator("#township option").first).to_have_text("全旗县")
    await _check(page, "push subscription", problems, public=True)
    assert problems == {}, "\n".join(f"{page}: {' '.join(w)}" for page, w in problems.items())
