"""The city's report route over a real socket: it reads a report however its body arrives (in
several TCP segments, chunked) within the size limit, and finds the relay delivery a report is
about among any number of the alert's other deliveries."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.cap.serialize import to_xml
from broadcaster.service import BroadcasterService
from tests.core.support import make_alert, make_config, village_targets
from tests.relay.test_federation import free_ports
from tests.relay.test_reports import OFFICER, REPORT, Pair, _call, _with, pair

__all__ = ["pair"]  # the fixture, used by name

JINING, ZHUOZI = "150902000000", "150921000000"


async def _raw_post(port: int, path: str, head: str, parts: list[bytes]) -> bytes:
    """POST ``parts`` one TCP segment after another (a pause between them): the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {REPORT}\r\n"
        f"Content-Type: application/json\r\n{head}Connection: close\r\n\r\n".encode()
    )
    for part in parts:
        writer.write(part)
        await writer.drain()
        await asyncio.sleep(0.2)
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


async def test_a_report_arriving_in_several_segments_is_read_whole(pair: Pair) -> None:
    status, body = await _call(
        pair.city,
        "POST",
        "/api/v1/alerts",
        OFFICER,
        to_xml(make_alert("segments-1")),
        "application/cap+xml",
    )
    assert status == 201, body
    path = f"/api/v1/alerts/{body['id']}/reports"
    report = json.dumps(
        {"node": "150921", "summary": {"log": {"retrying": 5}}, "complete": False}
    ).encode()
    length = f"Content-Length: {len(report)}\r\n"
    answer = await _raw_post(pair.port, path, length, [report[:20], report[20:40], report[40:]])
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert answer.endswith(b'"complete": false}')

    chunked = "Transfer-Encoding: chunked\r\n"
    pieces = [f"{len(report) - 30:x}\r\n".encode() + report[30:] + b"\r\n0\r\n\r\n"]
    answer = await _raw_post(pair.port, path, chunked, [b"1e\r\n" + report[:30] + b"\r\n", *pieces])
    assert answer.startswith(b"HTTP/1.1 200"), answer
    kib = b"400\r\n" + b" " * 1024 + b"\r\n"
    answer = await _raw_post(pair.port, path, chunked, [kib * 40, kib * 40, b"0\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 413") and b"at most 65536 bytes" in answer


async def test_a_report_is_taken_among_many_of_the_city_s_own_deliveries(tmp_path: Path) -> None:
    port = free_ports(2)
    relay = {
        "type": "relay",
        # Nothing listens there: the relay delivery waits to be retried.
        "nodes": [{"division": "150921", "url": f"http://127.0.0.1:{port + 1}", "token": "r" * 20}],
    }
    # 10,001 of the city's own devices, planned before the relay ("log" before "relay").
    city = make_config(
        tmp_path,
        {"log": {"type": "log", "rate_per_second": 1}, "relay": relay},
        village_targets("log", 10_001, JINING),
    )
    city = _with(
        city,
        [
            {"name": "officer", "token": OFFICER},
            {"name": "county-150921", "token": REPORT, "node": "150921"},
        ],
        {"role": "city", "division": "150900"},
    )
    server = TestServer(make_app(BroadcasterService(city)), port=port)
    await server.start_server()
    try:
        alert = to_xml(make_alert("many-1", geocodes=(JINING, ZHUOZI)))
        status, body = await _call(
            server, "POST", "/api/v1/alerts", OFFICER, alert, "application/cap+xml"
        )
        assert status == 201 and body["planned"] == {"log": 10_001, "relay": 1}, body
        report = {"node": "150921", "summary": {"log": {"confirmed": 5}}, "complete": True}
        status, answer = await _call(
            server,
            "POST",
            f"/api/v1/alerts/{body['id']}/reports",
            REPORT,
            json.dumps(report).encode(),
            "application/json",
        )
        assert status == 200, answer
        assert answer["deliveries"] == [10_002] and answer["complete"] is True
    finally:
        await server.close()
