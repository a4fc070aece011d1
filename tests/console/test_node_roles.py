"""Node roles: a county node's officers and API clients warn their own county only, a city
node's any county of its city; the node it reports to scopes its own alerts. Checked through
the API (403 naming the area) and the console's compose form (refused with the reason)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from broadcaster.cap.serialize import to_xml
from broadcaster.config import Config, parse_config
from broadcaster.errors import ConfigError
from broadcaster.federationconfig import NodeConfig
from tests.console.support import (
    ConsoleClient,
    ConsoleServer,
    compose_form,
    console_config,
    console_server,
    demo_targets,
)
from tests.core.support import make_alert

ZHUOZI, LIANGCHENG, HUADE = "150921000000", "150925000000", "150922000000"
OFFICER_TOKEN, CITY_TOKEN = "officer-token-0123456789", "city-relay-token-0123456789"
_ALERT_URL = re.compile(r"/console/alerts/(a[0-9a-f]+)")


def _node_config(tmp_path: Path, node: dict[str, Any]) -> Config:
    targets = demo_targets("speaker", ZHUOZI) + demo_targets("speaker", LIANGCHENG)
    config = console_config(
        tmp_path,
        {"speaker": {"type": "tests.console.support:BoxChannel"}},
        targets,
        audio_preview=False,
    )
    tokens = [{"name": "officer", "token": OFFICER_TOKEN}, {"name": "city", "token": CITY_TOKEN}]
    return config.model_copy(
        update={
            "api": config.api.model_validate({"tokens": tokens}),
            "node": NodeConfig.model_validate(node),
        }
    )


COUNTY_NODE = {
    "role": "county",
    "division": "150921",
    "report_to": [{"client": "city", "url": "http://127.0.0.1:9/", "token": "t" * 20}],
}


@pytest.fixture
async def county(tmp_path: Path) -> AsyncIterator[ConsoleServer]:
    async with console_server(_node_config(tmp_path, COUNTY_NODE)) as server:
        yield server


async def _post(server: ConsoleServer, token: str, *codes: str) -> tuple[int, dict[str, Any]]:
    alert = make_alert(f"roles-{token[:4]}-{'-'.join(codes)}", geocodes=codes)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            server.server.make_url("/api/v1/alerts"),
            data=to_xml(alert),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/cap+xml"},
        ) as response,
    ):
        return response.status, await response.json()


async def test_a_county_node_api_client_warns_its_own_county_only(county: ConsoleServer) -> None:
    status, body = await _post(county, OFFICER_TOKEN, ZHUOZI, LIANGCHENG)
    assert status == 403, body
    assert "county node's officers may warn only within its own county" in body["error"]
    assert "凉城县 (150925)" in body["error"] and "卓资县 (150921)" in body["error"]
    assert body["problems"][0]["rule"] == "outside-division"
    assert await county.service.store.alerts.active(0) == []
    status, body = await _post(county, OFFICER_TOKEN, "150921001")
    assert status == 201, body


async def test_the_city_node_scopes_the_alerts_it_relays(county: ConsoleServer) -> None:
    status, body = await _post(county, CITY_TOKEN, ZHUOZI, LIANGCHENG)
    assert status == 201, body


async def test_the_console_refuses_an_area_outside_the_county_and_says_why(
    county: ConsoleServer,
) -> None:
    drafter = ConsoleClient(county)
    try:
        await drafter.login("drafter")
        form = compose_form(divisions=(ZHUOZI, LIANGCHENG))
        status, page = await drafter.post("/console/compose", form)
        assert status == 400
        assert "超出本中心的预警发布范围" in page and "凉城县 (150925)" in page
        assert "outside 卓资县 (150921), the division this node serves" in page
        assert _ALERT_URL.fullmatch(drafter.last_path) is None
        assert await county.service.store.alerts.pending_approvals() == []
        polygon = "41.5,111.0 41.5,113.5 40.0,113.5 40.0,111.0 41.5,111.0"
        status, page = await drafter.post(
            "/console/compose", [*compose_form(divisions=()), ("polygon", polygon)]
        )
        assert status == 400 and "outside 卓资县 (150921)" in page
        status, page = await drafter.post("/console/compose", compose_form())
        assert status == 200 and _ALERT_URL.fullmatch(drafter.last_path), page
    finally:
        await drafter.close()


async def test_a_city_node_warns_any_county_of_its_city(tmp_path: Path) -> None:
    config = _node_config(tmp_path, {"role": "city", "division": "150900"})
    async with console_server(config) as city:
        status, body = await _post(city, OFFICER_TOKEN, ZHUOZI, LIANGCHENG)
        assert status == 201, body
        status, body = await _post(city, OFFICER_TOKEN, "150100")
        assert status == 403 and "city node's officers" in body["error"], body


def test_a_role_needs_a_division_of_its_level() -> None:
    report_to = [{"client": "city", "url": "http://127.0.0.1:9", "token": "t" * 20}]
    for node, message in (
        (
            {"role": "county", "division": "150921", "report_to": report_to},
            r"node.report_to\[0\].client: no \[\[api.tokens\]\] entry is named 'city'",
        ),
        ({"role": "county"}, "a county node needs its division code"),
        ({"role": "county", "division": "150900"}, "must be a county, 150900 is a city"),
        ({"role": "city", "division": "150921"}, "must be a city, 150921 is a county"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_config({"node": node}, base_dir=Path("."), source=None)
