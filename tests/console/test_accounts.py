"""Officer accounts: argon2 hashes, lockout after the configured count, sessions, API tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from broadcaster.auth import (
    AccountError,
    AccountLockedError,
    ApiTokenStore,
    LoginError,
    LoginRateLimitedError,
    LoginRateLimiter,
    OfficerStore,
    Permission,
    Role,
    SessionStore,
)
from broadcaster.config import ConsoleConfig
from broadcaster.store.db import Database

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def stores(database: Database) -> AsyncIterator[tuple[OfficerStore, SessionStore, Clock]]:
    clock = Clock()
    config = ConsoleConfig(lockout_after=3, lockout_minutes=10, idle_minutes=30)
    officers = OfficerStore(database, config, clock)
    yield officers, SessionStore(database, config, clock), clock


async def test_password_is_stored_as_argon2_hash_only(stores) -> None:  # type: ignore[no-untyped-def]
    officers, _, _ = stores
    await officers.create("ann", PASSWORD, Role.DRAFTER, "Ann")
    rows = await officers.database.run(officers.database.query, "SELECT * FROM officers")
    assert rows[0]["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in repr(rows)
    officer = await officers.authenticate("ann", PASSWORD)
    assert officer.can(Permission.DRAFT) and not officer.can(Permission.APPROVE)


async def test_bad_accounts_are_refused(stores) -> None:  # type: ignore[no-untyped-def]
    officers, _, _ = stores
    with pytest.raises(AccountError, match="characters"):
        await officers.create("ann", "short", Role.DRAFTER)
    with pytest.raises(AccountError, match="username"):
        await officers.create("Ann Smith", PASSWORD, Role.DRAFTER)
    with pytest.raises(AccountError, match="role"):
        await officers.create("ann", PASSWORD, "boss")
    await officers.create("ann", PASSWORD, Role.ADMIN)
    with pytest.raises(AccountError, match="exists"):
        await officers.create("ann", PASSWORD, Role.VIEWER)
    with pytest.raises(AccountError, match="last enabled admin"):
        await officers.update("ann", role=Role.VIEWER)
    assert await officers.count() == 1


async def test_wrong_passwords_lock_the_account_after_the_configured_count(stores) -> None:  # type: ignore[no-untyped-def]
    officers, _, clock = stores
    await officers.create("ann", PASSWORD, Role.DRAFTER)
    for _ in range(2):
        with pytest.raises(LoginError) as info:
            await officers.authenticate("ann", "wrong password!")
        assert not isinstance(info.value, AccountLockedError)
    with pytest.raises(AccountLockedError):
        await officers.authenticate("ann", "wrong password!")
    # Locked: even the right password is refused until the lock ends.
    with pytest.raises(AccountLockedError):
        await officers.authenticate("ann", PASSWORD)
    clock.now += 11 * 60
    assert (await officers.authenticate("ann", PASSWORD)).username == "ann"


async def test_unknown_user_gets_the_same_answer(stores) -> None:  # type: ignore[no-untyped-def]
    officers, _, _ = stores
    with pytest.raises(LoginError, match="wrong username or password"):
        await officers.authenticate("nobody", PASSWORD)


async def test_sessions_end_when_idle_and_on_password_change(stores) -> None:  # type: ignore[no-untyped-def]
    officers, sessions, clock = stores
    await officers.create("ann", PASSWORD, Role.DRAFTER)
    cookie, session = await sessions.create("ann", "127.0.0.1")
    rows = await sessions.database.run(sessions.database.query, "SELECT * FROM console_sessions")
    assert cookie not in repr(rows)
    assert (await sessions.lookup(cookie)) == session
    clock.now += 29 * 60
    assert await sessions.lookup(cookie) is not None
    clock.now += 31 * 60
    assert await sessions.lookup(cookie) is None
    cookie, _ = await sessions.create("ann", "127.0.0.1")
    await officers.set_password("ann", "another long password")
    assert await sessions.lookup(cookie) is None
    assert await sessions.lookup("made-up") is None


async def test_api_tokens_are_shown_once_and_revocable(database: Database) -> None:
    tokens = ApiTokenStore(database)
    token, grant = await tokens.create("county-feed", created_by="console:root")
    assert token.startswith("bct_") and grant.hint == token[:8]
    stored = await database.run(database.query, "SELECT * FROM api_token_grants")
    assert token not in repr(stored)
    found = await tokens.client_for(token)
    assert found is not None and found.name == "county-feed"
    assert await tokens.client_for(token[:-1] + "x") is None
    with pytest.raises(AccountError):
        await tokens.create("county-feed", created_by="console:root")
    await tokens.revoke(grant.id, by="console:root")
    assert await tokens.client_for(token) is None


@pytest.mark.parametrize("change", [{"enabled": False}, {"role": Role.APPROVER}])
async def test_the_tokens_of_an_admin_disabled_or_demoted_stop_working(
    stores,
    change: dict[str, object],  # type: ignore[no-untyped-def]
) -> None:
    officers, _, _ = stores
    await officers.create("root", PASSWORD, Role.ADMIN)
    await officers.create("ann", PASSWORD, Role.ADMIN)
    tokens = ApiTokenStore(officers.database)
    anns, _ = await tokens.create("ann-feed", created_by="console:ann")
    roots, _ = await tokens.create("root-feed", created_by="console:root")
    await officers.update("ann", **change)  # type: ignore[arg-type]
    assert await tokens.client_for(anns) is None
    assert await tokens.client_for(roots) is not None
    (revoked,) = [g for g in await tokens.all() if g.name == "ann-feed"]
    assert revoked.revoked_by == "system"


def test_login_rate_limit_per_address() -> None:
    now = [0.0]
    limiter = LoginRateLimiter(3, clock=lambda: now[0])
    for _ in range(3):
        limiter.check("10.0.0.1")
    with pytest.raises(LoginRateLimitedError):
        limiter.check("10.0.0.1")
    limiter.check("10.0.0.2")
    now[0] = 61
    limiter.check("10.0.0.1")
