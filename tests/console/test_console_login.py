"""Logging in: wrong passwords lock the account, attempts are rate-limited per address, and an
officer changes their own password (which ends their sessions)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broadcaster.audit import AuditLog
from tests.console.support import (
    PASSWORDS,
    ConsoleClient,
    ConsoleServer,
    console_config,
    console_server,
)

CHANNELS = {"speaker": {"type": "tests.console.support:BoxChannel"}}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ConsoleServer]:
    config = console_config(tmp_path, CHANNELS, [], lockout_after=3, audio_preview=False)
    async with console_server(config) as running:
        yield running


@pytest.fixture
async def officer(server: ConsoleServer) -> AsyncIterator[ConsoleClient]:
    client = ConsoleClient(server)
    yield client
    await client.close()


async def _audit(server: ConsoleServer, **filters: str) -> list[tuple[str, str, str]]:
    log = AuditLog(server.service.database)
    entries = await server.service.database.run(log.entries, limit=1000, **filters)
    return [(e.actor, e.action, e.subject) for e in reversed(entries)]


async def test_wrong_passwords_lock_the_account(officer: ConsoleClient) -> None:
    for _ in range(2):
        status, page = await officer.login("drafter", "not the password")
        assert status == 401 and "Wrong username or password" in page
    status, page = await officer.login("drafter", "not the password")
    assert status == 403 and "Account locked" in page
    status, page = await officer.login("drafter")  # the right one, too late
    assert status == 403 and "Account locked" in page
    actions = [a for _, a, s in await _audit(officer.server, action="login") if s == "drafter"]
    assert actions == ["login.failed", "login.failed", "login.locked", "login.locked"]
    # An admin unlocks the account.
    admin = ConsoleClient(officer.server)
    try:
        await admin.login("admin")
        status, _ = await admin.post("/console/users/drafter", {"action": "unlock"})
        assert status == 200
    finally:
        await admin.close()
    status, page = await officer.login("drafter")
    assert status == 200 and 'id="officer-name"' in page


async def test_login_attempts_are_rate_limited_per_address(tmp_path: Path) -> None:
    config = console_config(tmp_path, CHANNELS, [], login_attempts_per_minute=3)
    async with console_server(config) as running:
        client = ConsoleClient(running)
        try:
            for _ in range(3):
                status, _ = await client.login("viewer", "wrong password here")
                assert status == 401
            status, page = await client.login("viewer")
            assert status == 429 and "Too many attempts" in page
        finally:
            await client.close()


async def test_an_officer_changes_their_own_password(server: ConsoleServer) -> None:
    client = ConsoleClient(server)
    try:
        await client.login("drafter")
        new = "a much better password"
        form = {"password": "wrong one!", "new_password": new, "new_password_again": new}
        status, page = await client.post("/console/password", form)
        assert status == 403 and "current password is wrong" in page
        form["password"] = PASSWORDS["drafter"]
        form["new_password_again"] = new + "!"
        status, _ = await client.post("/console/password", form)
        assert status == 400
        form["new_password_again"] = new
        status, page = await client.post("/console/password", form)
        assert status == 200 and 'id="login-form"' in page  # every session ended
        status, page = await client.get("/console/devices")
        assert 'id="login-form"' in page
        status, _ = await client.login("drafter")
        assert status == 401
        status, page = await client.login("drafter", new)
        assert status == 200 and 'id="officer-name"' in page
    finally:
        await client.close()
    actions = [a for _, a, s in await _audit(server, action="user") if s == "drafter"]
    assert actions == ["user.password.refused", "user.password"]
