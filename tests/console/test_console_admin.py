"""Admin pages and device health in the console: officers, roles, the audit chain view, and
the devices channels report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.console.support import (
    ConsoleClient,
    ConsoleServer,
    console_config,
    console_server,
    demo_targets,
)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ConsoleServer]:
    channels = {"speaker": {"type": "tests.console.support:BoxChannel"}}
    config = console_config(tmp_path, channels, demo_targets("speaker"), audio_preview=False)
    async with console_server(config) as running:
        yield running


async def test_admin_pages_and_the_audit_chain(server: ConsoleServer) -> None:
    admin, drafter = ConsoleClient(server), ConsoleClient(server)
    try:
        await admin.login("admin")
        await drafter.login("drafter")
        status, _ = await drafter.get("/console/users")
        assert status == 403
        status, page = await admin.post(
            "/console/users/drafter", {"action": "role", "role": "viewer"}
        )
        assert status == 200
        status, _ = await drafter.get("/console/compose")  # the new role applies at once
        assert status == 403
        status, page = await admin.post("/console/users/admin", {"action": "disable"})
        assert status == 400 and "last enabled admin" in page
        status, page = await admin.get("/console/audit")
        assert status == 200 and "Hash chain intact" in page
        assert "user.role" in page
    finally:
        await admin.close()
        await drafter.close()


async def test_device_health_page(tmp_path: Path) -> None:
    channels = {"boxes": {"type": "tests.console.support:DeviceReportingChannel"}}
    config = console_config(tmp_path, channels, demo_targets("boxes"), audio_preview=False)
    async with console_server(config) as running:
        client = ConsoleClient(running)
        try:
            await client.login("viewer")
            status, page = await client.get("/console/devices")
        finally:
            await client.close()
    assert status == 200
    assert "1 of 2 boxes offline" in page and "FAULT" in page
    assert page.count('<tr class="offline">') == 2 and "15 min ago" in page
    assert "encoder did not answer" in page
    assert "imei: 8600000001" in page and ">21<" in page
    assert f"<b>{len(demo_targets('boxes'))}</b>" in page
