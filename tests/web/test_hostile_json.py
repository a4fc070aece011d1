"""Hostile JSON bodies on every JSON endpoint, public and authenticated: each is answered 400
with a message naming the problem, never 500, never a traceback, and nothing is stored."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from broadcaster.cap.serialize import to_xml
from broadcaster.jsonbody import JsonBodyError, parse_json
from tests.core.support import make_alert
from tests.web.conftest import Site, serving, site_config

DEEP = b"[" * 8_000 + b"]" * 8_000  # past the parser's recursion, within 16 KiB
DEEP_BUT_PARSEABLE = b'{"a":' * 200 + b"1" + b"}" * 200
HUGE_INTEGER = b'{"reason": ' + b"9" * 5000 + b"}"
HUGE_FLOAT = b'{"reason": 1' + b"0" * 400 + b".5}"
BAD_UTF8 = b'{"reason": "\xff\xfe"}'
NOT_AN_OBJECT = b"[1, 2, 3]"
NAN = b'{"reason": NaN}'

HOSTILE = {
    "deep": (DEEP, "nested deeper"),
    "deep-but-parseable": (DEEP_BUT_PARSEABLE, "nested deeper"),
    "huge-integer": (HUGE_INTEGER, "digits"),
    "huge-float": (HUGE_FLOAT, "longer than"),
    "bad-utf8": (BAD_UTF8, "not UTF-8"),
    "not-an-object": (NOT_AN_OBJECT, "must be a JSON object"),
    "nan": (NAN, "not a JSON value"),
}

PUBLIC = [
    "/channels/webpush/subscribe",
    "/channels/webpush/unsubscribe",
    "/channels/webpush/renew",
    "/channels/webpush/ack",
]
AUTHENTICATED = [
    "/api/v1/alerts",
    "/api/v1/alerts/any/cancel",
    "/api/v1/alerts/any/approve",
    "/api/v1/alerts/any/reject",
    "/api/v1/schedules",
]


async def _post(session: aiohttp.ClientSession, path: str, body: bytes) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    async with session.post(path, data=body, headers=headers) as response:
        return response.status, await response.text()


async def _count(site: Site, table: str) -> int:
    db = site.service.database
    row = await db.run(lambda: db.conn.execute(f"SELECT count(*) FROM {table}").fetchone())
    return int(row[0])


@pytest.mark.parametrize("kind", sorted(HOSTILE))
async def test_hostile_json_gets_400_on_public_endpoints(site: Site, kind: str) -> None:
    body, message = HOSTILE[kind]
    for path in PUBLIC:
        status, text = await _post(site.public, path, body)
        assert status == 400, (path, status, text)
        assert message in text and "Traceback" not in text, (path, text)
    service = site.service
    assert await service.database.run(service.targets.for_channel, "webpush") == []


@pytest.mark.parametrize("kind", sorted(HOSTILE))
async def test_hostile_json_gets_400_on_authenticated_endpoints(site: Site, kind: str) -> None:
    body, message = HOSTILE[kind]
    stored = await _stored_alert(site)
    alerts_before = await _count(site, "alerts")
    for path in AUTHENTICATED:
        path = path.replace("/any/", f"/{stored}/")
        status, text = await _post(site.api, path, body)
        assert status == 400, (path, status, text)
        assert message in text and "Traceback" not in text, (path, text)
    assert await _count(site, "alerts") == alerts_before


async def _stored_alert(site: Site) -> str:
    headers = {"Content-Type": "application/cap+xml"}
    document = to_xml(make_alert())
    async with site.api.post("/api/v1/alerts", data=document, headers=headers) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["id"])


def test_limits_are_exact() -> None:
    assert parse_json(b'{"a":' * 63 + b"1" + b"}" * 63) is not None
    with pytest.raises(JsonBodyError, match="nested deeper than 64"):
        parse_json(b"[" * 65 + b"]" * 65)
    assert parse_json(b"-" + b"9" * 32) == -int("9" * 32)
    with pytest.raises(JsonBodyError, match="more than 32 digits"):
        parse_json(b"9" * 33)
    with pytest.raises(JsonBodyError, match="out of range"):
        parse_json(b"1e999")
    with pytest.raises(JsonBodyError, match="not JSON"):
        parse_json(b'{"a": 1,}')


async def test_an_unexpected_error_in_a_channel_page_shows_no_details(tmp_path: Path) -> None:
    """A third-party channel's endpoint that fails on bad input: a plain 500, no traceback."""
    data = site_config(tmp_path)
    data["channels"]["enrol"] = {"type": "tests.core.support:EnrollingChannel"}
    async with (
        serving(data, tmp_path) as running,
        running.public.post("/channels/enrol/enrol", json={"bogus": 1}) as response,
    ):
        text = await response.text()
        assert response.status == 500
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert json.loads(text) == {"error": "internal error; the details are in the server log"}
    assert "Traceback" not in text and "KeyError" not in text
