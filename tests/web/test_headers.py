"""Security headers on every kind of answer, and raw CAP documents that a browser saves instead
of rendering: a signed alert whose ``ds:Object`` carries an XHTML script is served as an
attachment under a sandboxing policy. The public pages, the subscription page and the console's
login page load in Chromium without a single policy violation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from broadcaster.web.headers import DOCUMENT_POLICY, PAGE_POLICY
from tests.conftest import CAP_SAMPLES
from tests.web.conftest import Site

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
XHTML_OBJECT = (
    b'<ds:Object><html:html xmlns:html="http://www.w3.org/1999/xhtml"><html:body>'
    b"<html:script>fetch('/pwned-by-cap');document.title='pwned';</html:script>"
    b"</html:body></html:html></ds:Object>\n    </ds:Signature>"
)
FIXED = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


async def _submit_signed_with_script(site: Site) -> str:
    raw = (CAP_SAMPLES / "signed" / "wmo_sc_valid.xml").read_bytes()
    hostile = raw.replace(b"</ds:Signature>", XHTML_OBJECT)
    assert hostile != raw
    headers = {"Content-Type": "application/cap+xml"}
    # A published sample, expired long ago: stored as such, as asked.
    url = "/api/v1/alerts?allow_empty=1"
    async with site.api.post(url, data=hostile, headers=headers) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["id"])


async def test_every_kind_of_answer_carries_the_security_headers(site: Site) -> None:
    alert_id = await _submit_signed_with_script(site)
    paths = {
        "/healthz": DOCUMENT_POLICY,
        "/metrics": DOCUMENT_POLICY,
        "/feed.atom": DOCUMENT_POLICY,
        f"/feed/alerts/{alert_id}.xml": DOCUMENT_POLICY,
        "/alerts": PAGE_POLICY,
        f"/alerts/{alert_id}": PAGE_POLICY,
        "/alerts/no-such-alert": PAGE_POLICY,
        "/no/such/path": DOCUMENT_POLICY,
        "/": DOCUMENT_POLICY,
        "/api/v1/approvals": DOCUMENT_POLICY,
        "/channels/webpush/": PAGE_POLICY,
        "/channels/webpush/sw.js": PAGE_POLICY,
        "/channels/webpush/static/subscribe.js": PAGE_POLICY,
        "/channels/webpush/key": DOCUMENT_POLICY,
    }
    for path, policy in paths.items():
        async with site.public.get(path, allow_redirects=False) as response:
            headers = response.headers
            assert headers.get("Content-Security-Policy") == policy, (path, response.status)
            for name, value in FIXED.items():
                assert headers.get(name) == value, (path, name)
    for path in ("/console/login", "/console/static/console.js"):
        async with site.public.get(path, allow_redirects=False) as response:
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "unsafe-inline" not in policy, path
            assert "frame-ancestors 'none'" in policy, path
            for name, value in FIXED.items():
                assert response.headers.get(name) == value, (path, name)


async def test_raw_cap_is_an_attachment_under_a_sandbox(site: Site) -> None:
    alert_id = await _submit_signed_with_script(site)
    for session, path in (
        (site.public, f"/feed/alerts/{alert_id}.xml"),
        (site.api, f"/api/v1/alerts/{alert_id}/cap"),
    ):
        async with session.get(path) as response:
            assert response.status == 200
            body = await response.read()
            assert b"pwned-by-cap" in body, "the document is served as received"
            assert response.content_type == "application/cap+xml"
            disposition = response.headers["Content-Disposition"]
            assert disposition == f'attachment; filename="{alert_id}.xml"'
            assert "sandbox" in response.headers["Content-Security-Policy"]


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        await browser.close()


async def test_pages_load_in_chromium_without_policy_violations(
    site: Site, chromium: Browser
) -> None:
    alert_id = await _submit_signed_with_script(site)
    page = await chromium.new_page()
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    for path in ("/alerts", f"/alerts/{alert_id}", "/channels/webpush/", "/console/login"):
        response = await page.goto(site.base + path)
        assert response is not None and response.ok, path
        await page.wait_for_load_state("networkidle")
    assert await page.locator("form").count() > 0
    await page.goto(site.base + "/channels/webpush/")
    await page.wait_for_load_state("networkidle")
    assert await page.locator("select").count() > 0, "the page's script filled the area list"
    violations = [m for m in messages if "Content Security Policy" in m]
    assert not violations, violations
    await page.close()
