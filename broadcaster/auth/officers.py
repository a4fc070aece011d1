"""Warning officers: accounts, roles, argon2 password hashes and the login lockout.

Roles and what they allow:

========  =====================================================================
viewer    read everything: alerts, delivery board, devices, history
drafter   viewer + compose alerts (they wait for approval), update, cancel
approver  drafter + approve or reject another officer's alert
admin     approver + manage officers and API tokens, read the audit log
========  =====================================================================

Passwords are hashed with argon2id (argon2-cffi); only the hash is stored. Hashing and checking
run in a worker thread, never on the event loop or the database thread. ``lockout_after``
wrong passwords in a row lock the account for ``lockout_minutes``.

Login attempts for one username run one at a time (per :class:`OfficerStore`, i.e. per
server process), and the transaction that records an attempt's outcome checks the lock again,
so parallel attempts check no more passwords than a sequence of them would, and a right
password never lifts a lock. An unknown, disabled or locked account costs the same hashing
time as a wrong password, and its error carries the same message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from broadcaster.auth.errors import AccountError, AccountLockedError, LoginError
from broadcaster.config import ConsoleConfig
from broadcaster.store.db import Database

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
ADMIN_PASSWORD_ENV = "BROADCASTER_ADMIN_PASSWORD"  # noqa: S105 - a variable name
"""Makes the officer ``admin`` on a start while no officer exists yet."""


class Role(StrEnum):
    VIEWER = "viewer"
    DRAFTER = "drafter"
    APPROVER = "approver"
    ADMIN = "admin"


class Permission(StrEnum):
    VIEW = "view"
    DRAFT = "draft"
    CANCEL = "cancel"
    APPROVE = "approve"
    ADMIN = "admin"


ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.VIEW}),
    Role.DRAFTER: frozenset({Permission.VIEW, Permission.DRAFT, Permission.CANCEL}),
    Role.APPROVER: frozenset(
        {Permission.VIEW, Permission.DRAFT, Permission.CANCEL, Permission.APPROVE}
    ),
    Role.ADMIN: frozenset(Permission),
}

_HASHER = PasswordHasher()
WRONG_LOGIN = "wrong username or password"
"""The message of every refused login: wrong password, unknown, disabled or locked account."""


@functools.cache
def _dummy_hash() -> str:
    """A hash to check unknown usernames against, so they cost the same time as known ones."""
    return _HASHER.hash("not a password of anyone")


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (slow on purpose: call from a worker thread)."""
    return _HASHER.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class Officer:
    username: str
    display_name: str
    role: Role
    enabled: bool
    failed_logins: int
    locked_until: float
    created_at: float
    last_login_at: float | None

    def can(self, permission: Permission) -> bool:
        return self.enabled and permission in ROLE_PERMISSIONS[self.role]

    @property
    def label(self) -> str:
        return self.display_name or self.username


def _officer(row: Mapping[str, Any]) -> Officer:
    return Officer(
        username=row["username"],
        display_name=row["display_name"],
        role=Role(row["role"]),
        enabled=bool(row["enabled"]),
        failed_logins=int(row["failed_logins"]),
        locked_until=float(row["locked_until"]),
        created_at=float(row["created_at"]),
        last_login_at=row["last_login_at"],
    )


@dataclass
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0


class _OneAtATime:
    """One holder per key at a time; a key is forgotten once no one holds or awaits it."""

    def __init__(self) -> None:
        self._turns: dict[str, _Turn] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        turn = self._turns.setdefault(key, _Turn())
        turn.holders += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.holders -= 1
            if not turn.holders:
                del self._turns[key]


def password_problem(password: str, config: ConsoleConfig) -> str | None:
    """Why the account rules refuse ``password``, or None."""
    if len(password) < config.min_password_length:
        return f"a password needs at least {config.min_password_length} characters"
    return None


def first_admin_refusal(problem: str) -> str:
    """Why a start refuses ``BROADCASTER_ADMIN_PASSWORD`` while no officer exists yet."""
    return (
        f"{ADMIN_PASSWORD_ENV}: {problem}; no officer exists yet, so nobody could log in"
        " (set a longer one, or add an admin with: broadcaster user add NAME --role admin)"
    )


class OfficerStore:
    """Officer accounts in the store; every method is async and safe to call from handlers."""

    def __init__(
        self, database: Database, config: ConsoleConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.database = database
        self.config = config
        self.clock = clock
        self._attempts = _OneAtATime()

    def check_password(self, password: str) -> None:
        problem = password_problem(password, self.config)
        if problem:
            raise AccountError(problem)

    async def count(self) -> int:
        rows = await self.database.run(self.database.query, "SELECT count(*) AS n FROM officers")
        return int(rows[0]["n"])

    async def get(self, username: str) -> Officer | None:
        rows = await self.database.run(
            self.database.query, "SELECT * FROM officers WHERE username = ?", (username,)
        )
        return _officer(rows[0]) if rows else None

    async def all(self) -> list[Officer]:
        rows = await self.database.run(
            self.database.query, "SELECT * FROM officers ORDER BY username"
        )
        return [_officer(r) for r in rows]

    async def create(
        self, username: str, password: str, role: Role | str, display_name: str = ""
    ) -> Officer:
        """Add an officer; raises AccountError for a bad name, role, password or a duplicate."""
        if not USERNAME.match(username):
            raise AccountError(
                "a username is 2-32 characters: lower-case letters, digits, '.', '_', '-'"
            )
        role = _role(role)
        self.check_password(password)
        password_hash = await asyncio.to_thread(hash_password, password)
        now = self.clock()

        def insert() -> bool:
            with self.database.transaction() as conn:
                cursor = conn.execute(
                    "INSERT INTO officers (username, display_name, role, password_hash,"
                    " created_at, password_changed_at) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (username, display_name.strip(), role, password_hash, now, now),
                )
            return cursor.rowcount == 1

        if not await self.database.run(insert):
            raise AccountError(f"officer {username!r} already exists")
        officer = await self.get(username)
        assert officer is not None
        return officer

    async def set_password(self, username: str, password: str) -> None:
        """Replace an officer's password; also lifts a lockout and ends their sessions."""
        self.check_password(password)
        password_hash = await asyncio.to_thread(hash_password, password)
        now = self.clock()

        def update() -> int:
            with self.database.transaction() as conn:
                count = conn.execute(
                    "UPDATE officers SET password_hash = ?, password_changed_at = ?,"
                    " failed_logins = 0, locked_until = 0 WHERE username = ?",
                    (password_hash, now, username),
                ).rowcount
                conn.execute("DELETE FROM console_sessions WHERE username = ?", (username,))
            return int(count)

        if not await self.database.run(update):
            raise AccountError(f"no officer {username!r}")

    async def update(
        self,
        username: str,
        *,
        role: Role | str | None = None,
        enabled: bool | None = None,
        unlock: bool = False,
    ) -> Officer:
        """Change role, enable/disable or unlock; refuses to leave no enabled admin. An admin
        disabled or demoted loses the API tokens they issued (revoked by ``system``)."""
        new_role = _role(role) if role is not None else None

        def change() -> None:
            with self.database.transaction() as conn:
                row = conn.execute(
                    "SELECT role, enabled FROM officers WHERE username = ?", (username,)
                ).fetchone()
                if row is None:
                    raise AccountError(f"no officer {username!r}")
                stays_admin = (new_role or row["role"]) == Role.ADMIN and (
                    enabled if enabled is not None else bool(row["enabled"])
                )
                if row["role"] == Role.ADMIN and row["enabled"] and not stays_admin:
                    others = conn.execute(
                        "SELECT count(*) FROM officers WHERE role = 'admin' AND enabled = 1"
                        " AND username != ?",
                        (username,),
                    ).fetchone()[0]
                    if not others:
                        raise AccountError("the last enabled admin cannot be demoted or disabled")
                if new_role is not None:
                    conn.execute(
                        "UPDATE officers SET role = ? WHERE username = ?", (new_role, username)
                    )
                if enabled is not None:
                    conn.execute(
                        "UPDATE officers SET enabled = ? WHERE username = ?", (enabled, username)
                    )
                    if not enabled:
                        conn.execute("DELETE FROM console_sessions WHERE username = ?", (username,))
                if row["role"] == Role.ADMIN and not stays_admin:
                    # The API tokens an admin issued go with the power to issue them.
                    conn.execute(
                        "UPDATE api_token_grants SET revoked_by = 'system', revoked_at = ?"
                        " WHERE created_by = ? AND revoked_at IS NULL",
                        (self.clock(), f"console:{username}"),
                    )
                if unlock:
                    conn.execute(
                        "UPDATE officers SET failed_logins = 0, locked_until = 0"
                        " WHERE username = ?",
                        (username,),
                    )

        await self.database.run(change)
        officer = await self.get(username)
        assert officer is not None
        return officer

    async def authenticate(self, username: str, password: str) -> Officer:
        """The officer if the password is right; raises LoginError or AccountLockedError.

        Both carry the same message (:data:`WRONG_LOGIN`) whatever the reason.
        """
        async with self._attempts.hold(username):
            rows = await self.database.run(
                self.database.query, "SELECT * FROM officers WHERE username = ?", (username,)
            )
            row = rows[0] if rows else None
            if row is None or not row["enabled"]:
                await asyncio.to_thread(password_matches, _dummy_hash(), password)
                raise LoginError(WRONG_LOGIN)
            open_now = row["locked_until"] <= self.clock()
            stored = row["password_hash"] if open_now else _dummy_hash()
            matches = await asyncio.to_thread(password_matches, stored, password)
            success, locked_until = await self.database.run(
                self._record_attempt, username, matches and open_now, self.clock()
            )
        if locked_until:
            raise AccountLockedError(WRONG_LOGIN, until=locked_until)
        if not success:
            raise LoginError(WRONG_LOGIN)
        officer = await self.get(username)
        assert officer is not None
        return officer

    def _record_attempt(self, username: str, matches: bool, now: float) -> tuple[bool, float]:
        """Record one attempt's outcome; returns (logged in, end of the lock or 0).

        The lock is read in the same transaction, so an attempt that began before another
        one locked the account neither logs in nor lifts the lock.
        """
        with self.database.transaction() as conn:
            row = conn.execute(
                "SELECT failed_logins, locked_until FROM officers WHERE username = ?", (username,)
            ).fetchone()
            if row is None:
                return False, 0.0
            if row["locked_until"] > now:
                return False, float(row["locked_until"])
            if matches:
                conn.execute(
                    "UPDATE officers SET failed_logins = 0, locked_until = 0, last_login_at = ?"
                    " WHERE username = ?",
                    (now, username),
                )
                return True, 0.0
            failed = int(row["failed_logins"]) + 1
            until = (
                now + self.config.lockout_minutes * 60
                if failed >= self.config.lockout_after
                else 0.0
            )
            conn.execute(
                "UPDATE officers SET failed_logins = ?, locked_until = ? WHERE username = ?",
                (0 if until else failed, until, username),
            )
        return False, until


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise AccountError(f"unknown role {value!r} (one of {known})") from None
