"""Boxes that connect while the server is still starting, before its dispatcher exists (the
demo's simulated boxes always do), still bring their waiting deliveries forward: the retries
of an alert sent while they were offline go out as soon as the dispatcher runs, not after
their long offline backoff."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.config import AudioConfig
from broadcaster.service import BroadcasterService
from channels.loudspeaker import LoudspeakerChannel
from drivers.speaker.testing import free_port
from tests.core.support import make_alert, make_config, wait_for_deliveries, wait_until_complete
from tests.loudspeaker.conftest import SECRET, box_targets

OFFLINE_RETRY_S = 600.0
"""Far beyond the test's time: only a forwarded retry can deliver within it."""


async def serve(tmp_path: Path, port: int, *, simulate: bool) -> tuple[TestServer, Any]:
    channel = {
        "type": "loudspeaker",
        "master_secret": SECRET,
        "repeat": 1,
        "tcp": {"host": "127.0.0.1", "port": 0},
        "offline_retry_seconds": OFFLINE_RETRY_S,
        "simulate": simulate,
        "simulated_play_seconds": 0.05,
    }
    # A second channel starts after this one: its boxes connect while the first one's
    # boxes are already back, and the server is not yet dispatching.
    later = [
        t | {"id": f"later-{t['id']}", "channel": "later", "address": f"later-{t['address']}"}
        for t in box_targets("tcp")
    ]
    config = make_config(
        tmp_path,
        {"loudspeaker": channel, "later": channel | {"simulate": True}},
        box_targets("tcp") + later,
        confirm_timeout_seconds=30,
    )
    server_settings = config.server.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
    audio = AudioConfig(engine_order=("espeak-ng",))
    service = BroadcasterService(
        config.model_copy(update={"server": server_settings, "audio": audio})
    )
    server = TestServer(make_app(service), host="127.0.0.1", port=port)
    await server.start_server()
    return server, service


async def test_boxes_that_connect_before_the_dispatcher_get_their_retries(
    tmp_path: Path,
) -> None:
    port = free_port()
    server, service = await serve(tmp_path, port, simulate=False)
    try:
        result = await service.submit(make_alert("returning"), origin="test")
        rows = await wait_for_deliveries(
            service,
            result.alert_id,
            lambda rows: all(
                r["state"] == ("confirmed" if r["channel"] == "later" else "queued")
                and r["attempts"] >= 1
                for r in rows
            ),
        )
        assert all("offline" in str(r["last_error"]) for r in rows if r["channel"] != "later")
        waiting = [r["next_attempt_at"] for r in rows if r["channel"] != "later"]
        assert min(waiting) > time.time() + OFFLINE_RETRY_S / 3
    finally:
        await server.close()
    # The simulated boxes connect while the channel starts, before the dispatcher exists.
    server, service = await serve(tmp_path, port, simulate=True)
    try:
        channel = service.channels["loudspeaker"]
        assert isinstance(channel, LoudspeakerChannel) and channel.fleet is not None
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        assert summary == {"loudspeaker": {"confirmed": 3}, "later": {"confirmed": 3}}
        assert not channel.returning.waiting
    finally:
        await server.close()
