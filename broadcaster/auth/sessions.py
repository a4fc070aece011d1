"""Console sessions, CSRF tokens and the per-address login rate limit.

A session is a random 256-bit value in an ``HttpOnly``, ``SameSite=Strict`` cookie (``Secure``
when the console is served over https). The store keeps only its SHA-256, so a copy of the
database opens no session. A session ends ``session_hours`` after login, after
``idle_minutes`` unused, at logout, and when the officer's password changes or the account is
disabled.

Every session has its own CSRF token, put in each form (``csrf_token``) and in the page for
scripts (``X-CSRF-Token`` header); state-changing requests without it are refused. Before login
there is no session: the login form carries a double-submit token that must equal the value of
a short-lived cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from broadcaster.auth.errors import CsrfError, LoginRateLimitedError
from broadcaster.client_limits import RateLimiter
from broadcaster.config import ConsoleConfig
from broadcaster.store.db import Database

SESSION_COOKIE = "bc_session"
LOGIN_CSRF_COOKIE = "bc_login_csrf"
_TOUCH_EVERY = 60.0


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; an empty or missing token never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def require_csrf(given: str | None, expected: str | None) -> None:
    if not tokens_match(given, expected):
        raise CsrfError("the form has expired or did not come from this console; reload the page")


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    username: str
    csrf_token: str
    created_at: float
    expires_at: float
    id_hash: str


class SessionStore:
    """Sessions in the store; methods are async and run their SQL on the database thread."""

    def __init__(
        self, database: Database, config: ConsoleConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.database = database
        self.config = config
        self.clock = clock

    async def create(self, username: str, address: str) -> tuple[str, ConsoleSession]:
        """A new session for ``username``: the cookie value (shown once) and the session."""
        value = new_token()
        now = self.clock()
        session = ConsoleSession(
            username=username,
            csrf_token=new_token(),
            created_at=now,
            expires_at=now + self.config.session_hours * 3600,
            id_hash=_digest(value),
        )

        def insert() -> None:
            with self.database.transaction() as conn:
                conn.execute("DELETE FROM console_sessions WHERE expires_at <= ?", (now,))
                conn.execute(
                    "INSERT INTO console_sessions (id_hash, username, csrf_token, created_at,"
                    " last_seen_at, expires_at, address) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        session.id_hash,
                        username,
                        session.csrf_token,
                        now,
                        now,
                        session.expires_at,
                        address,
                    ),
                )

        await self.database.run(insert)
        return value, session

    async def lookup(self, value: str | None) -> ConsoleSession | None:
        """The live session a cookie value opens, or None (and an expired one is removed)."""
        if not value:
            return None
        id_hash = _digest(value)
        now = self.clock()
        idle = self.config.idle_minutes * 60

        def find() -> ConsoleSession | None:
            row = self.database.conn.execute(
                "SELECT s.*, o.enabled FROM console_sessions s"
                " JOIN officers o ON o.username = s.username WHERE s.id_hash = ?",
                (id_hash,),
            ).fetchone()
            if row is None:
                return None
            if row["expires_at"] <= now or row["last_seen_at"] + idle <= now or not row["enabled"]:
                with self.database.transaction() as conn:
                    conn.execute("DELETE FROM console_sessions WHERE id_hash = ?", (id_hash,))
                return None
            if now - row["last_seen_at"] >= _TOUCH_EVERY:
                with self.database.transaction() as conn:
                    conn.execute(
                        "UPDATE console_sessions SET last_seen_at = ? WHERE id_hash = ?",
                        (now, id_hash),
                    )
            return ConsoleSession(
                username=row["username"],
                csrf_token=row["csrf_token"],
                created_at=row["created_at"],
                expires_at=row["expires_at"],
                id_hash=id_hash,
            )

        return await self.database.run(find)

    async def end(self, session: ConsoleSession) -> None:
        def delete() -> None:
            with self.database.transaction() as conn:
                conn.execute("DELETE FROM console_sessions WHERE id_hash = ?", (session.id_hash,))

        await self.database.run(delete)


class LoginRateLimiter:
    """At most ``per_minute`` login attempts per client address in any 60 s window."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limiter = RateLimiter(per_minute, clock)

    def check(self, address: str) -> None:
        """Count one attempt; raises LoginRateLimitedError past the limit."""
        wait = self._limiter.wait_needed(address)
        if wait:
            raise LoginRateLimitedError(
                "too many login attempts from this address; wait a minute", retry_after=wait
            )
