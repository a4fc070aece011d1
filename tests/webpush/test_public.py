"""Public alert pages over HTTP: no token, every language, the instruction first, the area as
SVG from polygons, circles and the registry, banners for test alerts and cancelled ones."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from lxml import etree

from broadcaster.api.app import make_app
from broadcaster.cap import Alert, Circle, Scope, Status
from broadcaster.divisions import DivisionTree
from broadcaster.service import BroadcasterService
from broadcaster.web.areamap import build_map, convex_hull
from tests.core.support import make_alert
from tests.webpush.test_service import service_config

SVG = "{http://www.w3.org/2000/svg}"
POLYGON = [(40.95, 112.45), (40.95, 112.65), (40.80, 112.65), (40.80, 112.45), (40.95, 112.45)]


@pytest.fixture
async def site(
    tmp_path: Path,
) -> AsyncIterator[tuple[aiohttp.ClientSession, BroadcasterService]]:
    service = BroadcasterService(service_config(tmp_path))
    server = TestServer(make_app(service))
    await server.start_server()
    async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as session:
        yield session, service
    await server.close()


def bilingual_alert(identifier: str, **kwargs: Any) -> Alert:
    alert = make_alert(identifier, **kwargs)
    zh = alert.infos[0]
    en = replace(
        zh,
        language="en-US",
        headline="Orange blizzard warning for Zhuozi",
        instruction="Stay indoors and keep warm.",
        description="More than 10 mm of snow expected in 12 hours.",
    )
    return replace(alert, infos=[zh, en])


async def page(session: aiohttp.ClientSession, alert_id: str) -> tuple[int, str]:
    async with session.get(f"/alerts/{alert_id}") as response:
        return response.status, await response.text()


async def test_alert_page_shows_every_language_instruction_first_and_a_map(
    site: tuple[aiohttp.ClientSession, BroadcasterService],
) -> None:
    session, service = site
    alert = bilingual_alert("page-1", polygon=POLYGON)
    result = await service.submit(alert, origin="test", allow_empty=True)
    status, html = await page(session, result.alert_id)
    assert status == 200
    assert 'lang="zh-CN"' in html and 'lang="en-US"' in html
    assert "卓资县暴雪橙色预警" in html and "Orange blizzard warning for Zhuozi" in html
    zh_instruction = html.index("请减少外出，注意防寒保暖。")
    assert zh_instruction < html.index("预计未来12小时内降雪量将达10毫米以上。")
    assert html.index("Stay indoors") < html.index("More than 10 mm")
    assert "橙色预警 Ⅱ级" in html
    assert "not-real" not in html
    assert not re.search(r"(src|href)=\"https?:", html), "nothing may come from elsewhere"

    svg = etree.fromstring(re.search(r"<svg.*?</svg>", html, re.S).group(0).encode())
    areas = svg.findall(f"{SVG}polygon[@class='area division']")
    assert len(areas) == 1 and areas[0].findtext(f"{SVG}title") == "卓资县"
    assert len(svg.findall(f"{SVG}polygon[@class='area polygon']")) == 1
    assert svg.find(f"{SVG}polygon[@class='region']") is not None
    labels = [t.text for t in svg.findall(f"{SVG}text")]
    assert "集宁区" in labels and len(labels) == 11

    async with session.get("/public/public.css") as response:
        assert response.status == 200 and "text/css" in response.content_type


@pytest.mark.parametrize(
    ("status", "words"), [(Status.TEST, "TEST MESSAGE"), (Status.EXERCISE, "EXERCISE")]
)
async def test_test_and_exercise_alerts_carry_a_banner(
    site: tuple[aiohttp.ClientSession, BroadcasterService], status: Status, words: str
) -> None:
    session, service = site
    result = await service.submit(
        make_alert(f"t-{status}", status=status), origin="test", allow_empty=True
    )
    code, html = await page(session, result.alert_id)
    assert code == 200
    banner = html.index('class="banner not-real"')
    assert words in html[banner : banner + 300]
    assert "This is not a real warning" in html
    assert banner < html.index("<article")
    async with session.get("/alerts") as response:
        listing = await response.text()
    assert result.alert_id in listing and words in listing


async def test_cancelled_alert_says_so_and_unknown_or_restricted_are_404(
    site: tuple[aiohttp.ClientSession, BroadcasterService],
) -> None:
    session, service = site
    result = await service.submit(make_alert("c-1"), origin="test", allow_empty=True)
    cancel = await service.cancel(
        result.alert_id, reason="内部会商记录", origin="test", public_note="风险解除，恢复正常。"
    )
    _, html = await page(session, result.alert_id)
    assert "本预警已解除" in html and "cancelled" in html
    code, html = await page(session, cancel.alert_id)
    assert code == 200 and "Cancellation notice" in html and "风险解除，恢复正常。" in html
    assert "【解除】卓资县暴雪橙色预警" in html and "内部会商记录" not in html
    assert "area-map" in html  # the area whose warning is lifted
    # Times in the deployment's zone (Asia/Shanghai by default), not the alert's own UTC.
    assert "(UTC+08:00)" in html and "(UTC+00:00)" not in html
    assert f'href="/alerts/{result.alert_id}"' in html
    restricted = replace(make_alert("r-1"), scope=Scope.RESTRICTED, restriction="officials")
    hidden = await service.submit(restricted, origin="test", allow_empty=True)
    for alert_id in (hidden.alert_id, "a-nope", "%3Cscript%3E"):
        code, html = await page(session, alert_id)
        assert code == 404 and "Warning not found" in html
    async with session.get("/alerts") as response:
        assert hidden.alert_id not in await response.text()


def test_map_of_circles_villages_and_nothing(divisions: DivisionTree) -> None:
    circle = make_alert("m-1", geocodes=(), circle=Circle(40.9, 112.6, 10.0))
    area_map = build_map(circle, divisions)
    assert area_map is not None
    [shape] = area_map.shapes
    assert shape.kind == "circle" and 20 < shape.r < 200
    village = build_map(make_alert("m-2", geocodes=("150921001001",)), divisions)
    assert village is not None and village.shapes[0].kind == "circle"
    assert build_map(make_alert("m-3", geocodes=("440300000000",)), divisions) is None
    assert build_map(make_alert("m-4", geocodes=()), None) is None


def test_convex_hull() -> None:
    square = [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.5, 0.5), (0.0, 0.5)]
    assert sorted(convex_hull(square)) == [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]
    assert convex_hull([(1.0, 1.0), (1.0, 1.0)]) == [(1.0, 1.0)]
