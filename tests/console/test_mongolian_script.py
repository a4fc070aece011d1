"""Traditional Mongolian (mn-Mong) on screen, in headless Chromium: the public alert page, the
console's compose form and the push subscription page draw it with the bundled Noto Sans
Mongolian (served from /public/fonts/, no CDN), as glyphs rather than boxes.

Two independent checks per element: Chromium's own account of the fonts that drew the node
(DevTools ``CSS.getPlatformFontsForNode``: the bundled web font, every Mongolian letter a
glyph), and the pixels, compared with the same text in a font that lacks Mongolian (DejaVu
Sans; this machine has no system font for the script, so that rendering is boxes). The
screenshots go to ``test-artifacts/console/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.async_api import Locator, Page, expect

from tests.bilingual import alert
from tests.console.support import COUNTY, ConsoleServer, console_config, console_server
from tests.console.test_browser import ARTIFACTS, _login, page  # noqa: F401 - the fixture

MONGOLIAN = "ᠴᠠᠰᠤᠨ ᠰᠢᠭᠤᠷᠭ᠎ᠠ"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ConsoleServer]:
    push = {"type": "webpush", "vapid_subject": "mailto:duty@example.cn"}
    channels = {"speaker": {"type": "tests.console.support:BoxChannel"}, "push": push}
    config = console_config(tmp_path, channels, [])
    async with console_server(config) as running:
        yield running


async def _fonts_of(tab: Page, selector: str) -> list[dict[str, Any]]:
    """The platform fonts Chromium used for the text of the first node ``selector`` matches."""
    cdp = await tab.context.new_cdp_session(tab)
    await cdp.send("DOM.enable")
    await cdp.send("CSS.enable")
    root = await cdp.send("DOM.getDocument", {"depth": -1, "pierce": True})
    found = await cdp.send(
        "DOM.querySelector", {"nodeId": root["root"]["nodeId"], "selector": selector}
    )
    fonts = await cdp.send("CSS.getPlatformFontsForNode", {"nodeId": found["nodeId"]})
    await cdp.detach()
    result: list[dict[str, Any]] = fonts["fonts"]
    return result


async def _pixels(element: Locator, name: str) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """The element's screenshot (also kept as an artifact), in grey levels."""
    path = ARTIFACTS / f"{name}.png"
    await element.screenshot(path=str(path))
    return np.asarray(Image.open(path).convert("L"))


async def check_drawn_with_bundled_font(
    tab: Page, selector: str, name: str, text: str = MONGOLIAN
) -> None:
    """The element's Mongolian (``text``) is drawn by the bundled font, unlike boxes."""
    element = tab.locator(selector).first
    await expect(element).to_contain_text(text)
    await element.scroll_into_view_if_needed()
    await tab.evaluate("document.fonts.ready")
    fonts = await _fonts_of(tab, selector)
    bundled = [f for f in fonts if f["familyName"] == "Noto Sans Mongolian"]
    assert bundled and bundled[0]["isCustomFont"], (name, fonts)
    shown = await element.inner_text()
    letters = sum(1 for c in shown if 0x1820 <= ord(c) <= 0x18AF)
    # Shaping joins some letters (and their variation selectors) into one glyph.
    assert bundled[0]["glyphCount"] >= 0.8 * letters > 0, (fonts, letters)
    drawn = await _pixels(element, f"{name}-bundled")
    await element.evaluate("e => e.style.setProperty('font-family', 'DejaVu Sans', 'important')")
    boxes = await _pixels(element, f"{name}-without-mongolian-font")
    fallback = await _fonts_of(tab, selector)
    assert not any(f["familyName"] == "Noto Sans Mongolian" for f in fallback), fallback
    height = min(drawn.shape[0], boxes.shape[0])
    width = min(drawn.shape[1], boxes.shape[1])
    differing = np.mean(drawn[:height, :width] != boxes[:height, :width])
    assert differing > 0.02, f"bundled and box renderings look alike ({differing:.3f})"
    await element.evaluate("e => e.style.removeProperty('font-family')")


@pytest.mark.timeout(180)
async def test_mongolian_script_renders_with_the_bundled_font(
    server: ConsoleServer,
    page: Page,  # noqa: F811 - the fixture imported above
) -> None:
    accepted = await server.service.submit(
        alert("mn-page", "zh+mn"), origin="test", allow_empty=True
    )
    origin = str(server.server.make_url("/"))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    await page.goto(f"{origin}alerts/{accepted.alert_id}")
    await check_drawn_with_bundled_font(page, 'article[lang="mn-Mong"] h1', "mn-public-page")

    await _login(page, server.url, "drafter")
    await page.goto(server.url + "compose")
    await page.select_option("#hazard", "blizzard")
    await page.click("button[data-level=orange]")
    await page.check(f"input[name=division][value='{COUNTY}']")
    await page.check("#lang-mn")
    await expect(page.locator("[name='mn.headline']")).to_have_value(
        "ᠴᠠᠰᠤᠨ ᠰᠢᠭᠤᠷᠭ᠎ᠠ ᠤᠯᠠᠪᠳᠤᠷ ᠤᠷᠢᠳᠴᠢᠯᠠᠨ ᠰᠡᠷᠡᠮᠵᠢᠯᠡᠭᠦᠯᠦᠯ"
    )
    await page.screenshot(path=str(ARTIFACTS / "mn-console-compose.png"), full_page=True)
    await page.goto(f"{server.url}alerts/{accepted.alert_id}")
    await page.click("#content summary")  # the alert's texts, folded by default
    await check_drawn_with_bundled_font(page, 'article.info[lang="mn-Mong"] b', "mn-console-board")

    await page.goto(f"{origin}channels/push/")
    choice = "label.choice:has(input[value=mn])"
    await check_drawn_with_bundled_font(page, choice, "mn-push", "ᠮᠣᠩᠭᠣᠯ")

    assert all(r.startswith(origin) for r in requested), "everything is served locally"
    assert any(r.endswith("/public/fonts/NotoSansMongolian-Regular.ttf") for r in requested)
