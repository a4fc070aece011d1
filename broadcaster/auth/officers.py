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
wrong passwords in a row lock the account for ``lockout_minutes``; an unknown username costs
the same hashing time as a known one and gets the same answer.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from broadcaster.auth.errors import AccountError, AccountLockedError, LoginError
from broadcaster.config import ConsoleConfig
from broadcaster.store.db import Database

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")


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


class OfficerStore:
    """Officer accounts in the store; every method is async and safe to call from handlers."""

    def __init__(
        self, database: Database, config: ConsoleConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.database = database
        self.config = config
        self.clock = clock

    def check_password(self, password: str) -> None:
        if len(password) < self.config.min_password_length:
            raise AccountError(
                f"a password needs at least {self.config.min_password_length} characters"
            )

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
                    "INSERT OR IGNORE INTO officers (username, display_name, role, password_hash,"
                    " created_at, password_changed_at) VALUES (?, ?, ?, ?, ?, ?)",
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
        """Change role, enable/disable or unlock; refuses to leave no enabled admin."""
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
        """The officer if the password is right; raises LoginError or AccountLockedError."""
        rows = await self.database.run(
            self.database.query,
            "SELECT * FROM officers WHERE username = ?",
            (username,),
        )
        row = rows[0] if rows else None
        now = self.clock()
        if row is not None and row["locked_until"] > now:
            raise AccountLockedError("this account is locked", until=row["locked_until"])
        stored = row["password_hash"] if row is not None and row["enabled"] else _dummy_hash()
        matches = await asyncio.to_thread(password_matches, stored, password)
        if row is None or not row["enabled"]:
            raise LoginError("wrong username or password")
        if not matches:
            locked_until = await self.database.run(self._record_failure, username, now)
            if locked_until:
                raise AccountLockedError("this account is locked", until=locked_until)
            raise LoginError("wrong username or password")
        await self.database.run(self._record_success, username, now)
        officer = await self.get(username)
        assert officer is not None
        return officer

    def _record_failure(self, username: str, now: float) -> float:
        """Count a wrong password; returns the lock's end if this one locks the account."""
        with self.database.transaction() as conn:
            row = conn.execute(
                "UPDATE officers SET failed_logins = failed_logins + 1 WHERE username = ?"
                " RETURNING failed_logins",
                (username,),
            ).fetchone()
            if row is None or row[0] < self.config.lockout_after:
                return 0.0
            until = now + self.config.lockout_minutes * 60
            conn.execute(
                "UPDATE officers SET failed_logins = 0, locked_until = ? WHERE username = ?",
                (until, username),
            )
        return until

    def _record_success(self, username: str, now: float) -> None:
        with self.database.transaction() as conn:
            conn.execute(
                "UPDATE officers SET failed_logins = 0, locked_until = 0, last_login_at = ?"
                " WHERE username = ?",
                (now, username),
            )


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise AccountError(f"unknown role {value!r} (one of {known})") from None
