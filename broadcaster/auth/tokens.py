"""API tokens issued by admins from the console: create (shown once), list, revoke, look up.

A token is ``bct_`` + 43 random URL-safe characters. The store keeps its SHA-256 and a short
hint (the first 8 characters) so an admin can tell tokens apart; the token itself is shown
once, on the page that created it, and never again: not in lists, logs or the audit log.
Lookups compare digests in constant time. Tokens marked ``requires_approval`` submit alerts
that wait for an officer's approval.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broadcaster.auth.errors import AccountError
from broadcaster.store.db import Database

TOKEN_PREFIX = "bct_"  # noqa: S105 - the public prefix of issued tokens, not a secret
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiTokenGrant:
    """An issued token, without the token."""

    id: int
    name: str
    hint: str
    requires_approval: bool
    created_by: str
    created_at: float
    revoked_by: str | None
    revoked_at: float | None
    last_used_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _grant(row: Mapping[str, Any]) -> ApiTokenGrant:
    return ApiTokenGrant(
        id=int(row["id"]),
        name=row["name"],
        hint=row["hint"],
        requires_approval=bool(row["requires_approval"]),
        created_by=row["created_by"],
        created_at=float(row["created_at"]),
        revoked_by=row["revoked_by"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


class ApiTokenStore:
    """Issued API tokens in the store (async; SQL runs on the database thread)."""

    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self.database = database
        self.clock = clock

    async def create(
        self, name: str, *, created_by: str, requires_approval: bool = True
    ) -> tuple[str, ApiTokenGrant]:
        """Issue a token; returns it (to show once) and its grant. Names are unique."""
        if not _NAME.match(name):
            raise AccountError("a token name is 1-64 characters: letters, digits, '.', '_', '-'")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()

        def insert() -> int | None:
            with self.database.transaction() as conn:
                row = conn.execute(
                    "INSERT INTO api_token_grants (name, token_hash, hint, requires_approval,"
                    " created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING RETURNING id",
                    (name, _digest(token), token[:8], requires_approval, created_by, now),
                ).fetchone()
            return None if row is None else int(row["id"])

        grant_id = await self.database.run(insert)
        if grant_id is None:
            raise AccountError(f"a token named {name!r} exists already")
        grants = [g for g in await self.all() if g.id == grant_id]
        return token, grants[0]

    async def all(self) -> list[ApiTokenGrant]:
        rows = await self.database.run(
            self.database.query, "SELECT * FROM api_token_grants ORDER BY created_at DESC"
        )
        return [_grant(r) for r in rows]

    async def revoke(self, grant_id: int, *, by: str) -> ApiTokenGrant:
        now = self.clock()

        def update() -> dict[str, Any] | None:
            with self.database.transaction() as conn:
                conn.execute(
                    "UPDATE api_token_grants SET revoked_by = ?, revoked_at = ?"
                    " WHERE id = ? AND revoked_at IS NULL",
                    (by, now, grant_id),
                )
            rows = self.database.query("SELECT * FROM api_token_grants WHERE id = ?", (grant_id,))
            return rows[0] if rows else None

        row = await self.database.run(update)
        if row is None:
            raise AccountError(f"no API token {grant_id}")
        return _grant(row)

    async def officer_behind(self, actor: str) -> str:
        """The officer an actor acts for: for ``api:token:<name>`` the officer who issued that
        token (``console:<officer>``), else the actor itself."""
        name = actor.removeprefix("api:token:")
        if name == actor:
            return actor
        grants = [g for g in await self.all() if g.name == name]
        return grants[0].created_by if grants else actor

    async def client_for(self, token: str) -> ApiTokenGrant | None:
        """The active grant a presented token belongs to, or None; records its use."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        wanted = _digest(token)
        now = self.clock()

        def find() -> dict[str, Any] | None:
            rows = self.database.query(
                "SELECT * FROM api_token_grants WHERE revoked_at IS NULL AND hint = ?",
                (token[:8],),
            )
            for row in rows:
                if hmac.compare_digest(row["token_hash"], wanted):
                    with self.database.transaction() as conn:
                        conn.execute(
                            "UPDATE api_token_grants SET last_used_at = ? WHERE id = ?",
                            (now, row["id"]),
                        )
                    return row
            return None

        row = await self.database.run(find)
        return _grant(row) if row is not None else None
