"""Officer accounts, roles, console sessions with CSRF tokens, login limits and API tokens.

- :mod:`broadcaster.auth.officers`: accounts, roles and permissions, argon2 hashes, lockout;
- :mod:`broadcaster.auth.sessions`: session cookies, CSRF tokens, the login rate limit;
- :mod:`broadcaster.auth.tokens`: API tokens issued by admins;
- :mod:`broadcaster.auth.errors`: the exception tree.
"""

from broadcaster.auth.errors import (
    AccountError,
    AccountLockedError,
    AuthError,
    CsrfError,
    LoginError,
    LoginRateLimitedError,
    PermissionDeniedError,
)
from broadcaster.auth.officers import Officer, OfficerStore, Permission, Role
from broadcaster.auth.sessions import ConsoleSession, LoginRateLimiter, SessionStore
from broadcaster.auth.tokens import ApiTokenGrant, ApiTokenStore

__all__ = [
    "AccountError",
    "AccountLockedError",
    "ApiTokenGrant",
    "ApiTokenStore",
    "AuthError",
    "ConsoleSession",
    "CsrfError",
    "LoginError",
    "LoginRateLimitedError",
    "LoginRateLimiter",
    "Officer",
    "OfficerStore",
    "Permission",
    "PermissionDeniedError",
    "Role",
    "SessionStore",
]
