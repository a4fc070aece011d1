"""``/healthz`` is public: it says whether each channel is up, and nothing more. Which push
endpoint failed and how (a port-scan oracle), device details and plugin errors are shown only to
a request with a valid API token."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.config import parse_config
from broadcaster.delivery import Target
from broadcaster.service import BroadcasterService
from broadcaster.testing.contract import contract_delivery
from channels.webpush.client import EndpointRefusedError
from tests.web.conftest import TOKEN, site_config


async def test_health_details_only_for_api_clients(tmp_path: Path) -> None:
    data = site_config(tmp_path)
    data["channels"]["broken"] = {"type": "no-such-plugin"}
    service = BroadcasterService(parse_config(data, base_dir=tmp_path, source=None))
    server = TestServer(make_app(service), host="127.0.0.1")
    await server.start_server()
    try:
        probe = Target(
            id="push-probe",
            channel="webpush",
            name="probe",
            address="https://127.0.0.1:8443/wp/x",
            params={"p256dh": "x", "auth": "y", "secret": "s"},
        )
        with pytest.raises(EndpointRefusedError):
            await service.built["webpush"].send(contract_delivery(probe))
        base = str(server.make_url("/"))
        async with aiohttp.ClientSession(base_url=base) as session:
            async with session.get("/healthz") as response:
                public = await response.text()
                assert response.status == 200
            async with session.get("/healthz", headers={"Authorization": "Bearer wrong"}) as r:
                assert await r.text() == public
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with session.get("/healthz", headers=headers) as response:
                detailed = await response.json()
    finally:
        await server.close()
    assert "127.0.0.1" not in public and "8443" not in public and "no-such-plugin" not in public
    assert '"detail"' not in public
    assert '"webpush": {"ok": false}' in public and '"channel": "broken"' in public
    assert "127.0.0.1:8443" in detailed["channels"]["webpush"]["detail"]
    assert "no-such-plugin" in detailed["failed_channels"][0]["error"]
