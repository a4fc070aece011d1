"""``/healthz`` is public: it says whether each channel is up, and nothing more. Which push
endpoint failed and how (a port-scan oracle), device details and plugin errors are shown only to
a request with a valid API token."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.delivery import Target
from broadcaster.testing.contract import contract_delivery
from channels.webpush.client import EndpointRefusedError
from tests.web.conftest import serving, site_config


async def test_health_details_only_for_api_clients(tmp_path: Path) -> None:
    data = site_config(tmp_path)
    data["channels"]["broken"] = {"type": "no-such-plugin"}
    async with serving(data, tmp_path) as running:
        probe = Target(
            id="push-probe",
            channel="webpush",
            name="probe",
            address="https://127.0.0.1:8443/wp/x",
            params={"p256dh": "x", "auth": "y", "secret": "s"},
        )
        with pytest.raises(EndpointRefusedError):
            await running.service.built["webpush"].send(contract_delivery(probe))
        async with running.public.get("/healthz") as response:
            public = await response.text()
            assert response.status == 200
        wrong = {"Authorization": "Bearer wrong"}
        async with running.public.get("/healthz", headers=wrong) as response:
            assert await response.text() == public
        async with running.api.get("/healthz") as response:
            detailed = await response.json()
    assert "127.0.0.1" not in public and "8443" not in public and "no-such-plugin" not in public
    assert '"detail"' not in public
    assert '"webpush": {"ok": true}' in public and '"channel": "broken"' in public
    refused = detailed["channels"]["webpush"]["devices"]["127.0.0.1:8443"]
    assert refused["failed"] == 1 and "refused" in refused["last_error"]
    assert "no-such-plugin" in detailed["failed_channels"][0]["error"]
