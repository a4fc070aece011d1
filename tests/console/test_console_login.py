"""Logging in: wrong passwords lock the account, attempts are rate-limited per address, and an
officer changes their own password (which ends their sessions). Attacks over a real socket on
loopback: parallel guesses cannot get past the lockout, and the answer (page, status, time)
does not tell existing from unknown names."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broadcaster.audit import AuditLog
from broadcaster.auth import OfficerStore
from broadcaster.auth.sessions import LOGIN_CSRF_COOKIE
from broadcaster.console import login
from tests.console.support import (
    PASSWORDS,
    ConsoleClient,
    ConsoleServer,
    console_config,
    console_server,
)

CHANNELS = {"speaker": {"type": "tests.console.support:BoxChannel"}}
LOCKOUT_AFTER = 5
_CSRF_VALUE = re.compile(r'name="csrf_token" value="[^"]*"')


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ConsoleServer]:
    config = console_config(
        tmp_path,
        CHANNELS,
        [],
        lockout_after=LOCKOUT_AFTER,
        login_attempts_per_minute=1000,
        audio_preview=False,
    )
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
    for _ in range(LOCKOUT_AFTER):
        status, page = await officer.login("drafter", "not the password")
        assert status == 401 and "Wrong username or password" in page
    # The right one, too late: refused with the same answer, which names no lock.
    status, page = await officer.login("drafter")
    assert status == 401 and "Wrong username or password" in page
    actions = await _login_trail(officer.server, "drafter")
    assert actions == ["login.failed"] * (LOCKOUT_AFTER - 1) + ["login.locked"] * 2
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


async def test_a_password_typed_as_the_name_is_not_kept_in_the_audit(
    officer: ConsoleClient,
) -> None:
    status, _ = await officer.login(PASSWORDS["approver"], "tab, then the password again")
    assert status == 401
    status, _ = await officer.login("viewer", "not the viewer's password")
    assert status == 401
    trail = await _audit(officer.server, action="login.failed")
    assert trail == [
        ("anonymous", "login.failed", login.UNKNOWN_USER),
        ("anonymous", "login.failed", "viewer"),
    ]


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


async def _login_trail(server: ConsoleServer, username: str) -> list[str]:
    return [a for _, a, s in await _audit(server, action="login") if s == username]


def _one_after_another(order: list[bool]) -> list[str]:
    """The audit trail of login attempts (right password or not) checked one at a time."""
    trail: list[str] = []
    failed, locked = 0, False
    for right in order:
        if locked:
            trail.append("login.locked")
        elif right:
            trail.append("login")
            failed = 0
        else:
            failed += 1
            locked = failed >= LOCKOUT_AFTER
            trail.append("login.locked" if locked else "login.failed")
    return trail


async def _burst(server: ConsoleServer, passwords: list[str]) -> list[int]:
    """Log in as the drafter once per password, all at the same moment, each from a
    browser session of its own; returns the status of each answer (200: logged in)."""
    clients = [ConsoleClient(server) for _ in passwords]
    try:
        for client in clients:
            await client.get("/console/login")
        return list(
            await asyncio.gather(
                *(
                    _login(client, password)
                    for client, password in zip(clients, passwords, strict=True)
                )
            )
        )
    finally:
        for client in clients:
            await client.close()


async def _login(client: ConsoleClient, password: str) -> int:
    status, page = await _attempt(client, "drafter", password)
    return 200 if status == 200 and 'id="officer-name"' in page else status


async def _attempt(client: ConsoleClient, username: str, password: str) -> tuple[int, str]:
    """Post the login form of the page ``client`` fetched last, as the browser would."""
    token = next(c.value for c in client.session.cookie_jar if c.key == LOGIN_CSRF_COOKIE)
    form = {"username": username, "password": password, "csrf_token": token}
    return await client.post("/console/login", form, csrf=False)


async def test_parallel_guesses_cannot_get_past_the_lockout(server: ConsoleServer) -> None:
    """14 wrong passwords and the right one at once: the outcome is one that the same 15
    attempts one after the other could have had (at most 4 wrong ones checked before a
    login), and the account always ends locked."""
    officers = OfficerStore(server.service.database, server.service.config.console)
    guesses = 14
    possible = [
        _one_after_another([n == at for n in range(guesses + 1)]) for at in range(guesses + 1)
    ]
    seen = 0
    for right_at in (0, 14):
        passwords = [f"guess number {n:02d}" for n in range(guesses)]
        passwords.insert(right_at, PASSWORDS["drafter"])
        statuses = await _burst(server, passwords)
        assert sorted(set(statuses)) in ([401], [200, 401]) and statuses.count(200) <= 1
        trail = (await _login_trail(server, "drafter"))[seen:]
        seen += len(trail)
        assert trail in possible, trail
        assert trail.count("login") == statuses.count(200)
        drafter = await officers.get("drafter")
        assert drafter is not None and drafter.locked_until > time.time()
        assert await _burst(server, [PASSWORDS["drafter"]]) == [401]
        seen += 1
        await officers.update("drafter", unlock=True)


async def _timed_login(
    server: ConsoleServer, username: str, password: str
) -> tuple[int, str, float]:
    client = ConsoleClient(server)
    try:
        await client.get("/console/login")
        started = time.perf_counter()
        status, page = await _attempt(client, username, password)
        elapsed = time.perf_counter() - started
    finally:
        await client.close()
    return status, _CSRF_VALUE.sub("", page), elapsed


async def test_unknown_names_get_the_same_answer_as_locked_and_wrong(
    server: ConsoleServer,
) -> None:
    """Unknown user, locked account (even with its right password), disabled account and a
    wrong password: same status, same page, about the same time (the hash is always checked)."""
    officers = OfficerStore(server.service.database, server.service.config.console)
    for n in range(LOCKOUT_AFTER):
        status, _page, _ = await _timed_login(server, "drafter", f"wrong password {n}")
        assert status == 401
    await officers.update("approver", enabled=False)
    cases = {
        "wrong password": ("viewer", "not the viewer's password"),
        "unknown name": ("nobody", "some password 123"),
        "locked account": ("drafter", PASSWORDS["drafter"]),
        "disabled account": ("approver", PASSWORDS["approver"]),
    }
    answers: dict[str, set[tuple[int, str]]] = {}
    times: dict[str, list[float]] = {}
    for _ in range(3):
        for case, (username, password) in cases.items():
            status, page, elapsed = await _timed_login(server, username, password)
            answers.setdefault(case, set()).add((status, page))
            times.setdefault(case, []).append(elapsed)
    assert len({answer for seen in answers.values() for answer in seen}) == 1, answers
    status, page = answers["unknown name"].pop()
    assert status == 401 and "Wrong username or password" in page
    shown = re.sub(r"<script\b.*?</script>", "", page, flags=re.S)  # the catalogue's words
    assert "locked" not in shown.replace("lock an account", "")
    medians = {case: statistics.median(spent) for case, spent in times.items()}
    reference = medians["wrong password"]
    for median in medians.values():
        assert reference / 2 < median < reference * 2, medians
    trail = await _login_trail(server, "drafter")
    assert trail[-1] == "login.locked"  # the audit log, unlike the answer, records the lock
