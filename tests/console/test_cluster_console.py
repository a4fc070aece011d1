"""Two nodes on one PostgreSQL store behind a plain load balancer: an officer's session works
on either node, and the board's event stream on node B follows an alert node A delivers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.auth import OfficerStore, Role
from broadcaster.cap.serialize import to_xml
from broadcaster.config import Config, Secret, StoreConfig
from broadcaster.service import BroadcasterService
from broadcaster.testing.pgserver import PgServer
from tests.console.support import PASSWORDS, ConsoleClient, ConsoleServer, console_config
from tests.core.support import make_alert, village_targets


def _node(tmp_path: Path, name: str, url: str, channels: dict[str, dict[str, str]]) -> Config:
    (tmp_path / name).mkdir()
    config = console_config(tmp_path / name, channels, village_targets("log", 3))
    return config.model_copy(update={"store": StoreConfig(url=Secret(url), node=name)})


async def test_a_session_and_the_board_stream_work_on_either_node(
    tmp_path: Path, pg_server: PgServer
) -> None:
    url = pg_server.migrated()
    # Node a sends; node b has no channel, so what it shows can only come from node a.
    a = BroadcasterService(_node(tmp_path, "a", url, {"log": {"type": "log"}}))
    b = BroadcasterService(_node(tmp_path, "b", url, {}))
    server_a, server_b = TestServer(make_app(a)), TestServer(make_app(b))
    await server_a.start_server()
    await server_b.start_server()
    viewer = ConsoleClient(ConsoleServer(a, server_a))
    try:
        await OfficerStore(a.database, a.config.console).create(
            "viewer", PASSWORDS["viewer"], Role.VIEWER, "Viewer"
        )
        status, _ = await viewer.login("viewer")
        assert status == 200 and viewer.last_path == "/console/"
        alert = make_alert("cluster-board", effective_in=2)  # sent two seconds from now
        result = await a.submit(to_xml(alert), origin="api")
        # The same cookie on the other node (a load balancer without sticky sessions).
        cookies = viewer.session.cookie_jar.filter_cookies(server_a.make_url("/console/"))
        async with aiohttp.ClientSession(
            base_url=str(server_b.make_url("/")),
            cookies={k: v.value for k, v in cookies.items()},
        ) as on_b:
            async with on_b.get("/console/") as page:
                assert page.status == 200 and page.url.path == "/console/"
            snapshots = []
            path = f"/console/alerts/{result.alert_id}/stream"
            async with on_b.get(path, headers={"Accept": "text/event-stream"}) as stream:
                async with asyncio.timeout(15):
                    while not (snapshots and snapshots[-1]["complete"]):
                        line = (await stream.content.readline()).decode()
                        if line.startswith("data: "):
                            snapshots.append(json.loads(line[6:]))
        assert set(snapshots[0]["states"].values()) == {"queued"}
        assert set(snapshots[-1]["states"].values()) == {"confirmed"}
    finally:
        await viewer.close()
        await server_a.close()
        await server_b.close()
        pg_server.drop(url)
