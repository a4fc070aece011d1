"""The exceptions of officer accounts, sessions and API tokens.

::

    AuthError (BroadcasterError)
    ├── LoginError                    wrong username or password (never says which)
    │   └── AccountLockedError        too many wrong passwords; ``until`` says when it opens
    │                                 (for the audit log: its message is LoginError's)
    ├── LoginRateLimitedError         too many attempts from one address; ``retry_after`` (s)
    ├── PermissionDeniedError (PermissionError)   the officer's role does not allow the action
    ├── CsrfError (PermissionError)   a form came without the token of its session
    └── AccountError (ValueError)     a bad username, role or password, an unknown or
                                      duplicate account, removing the last admin
"""

from __future__ import annotations

from broadcaster.errors import BroadcasterError


class AuthError(BroadcasterError):
    """Base of every authentication and authorisation error."""


class LoginError(AuthError):
    """The username or password is wrong (the message never says which)."""


class AccountLockedError(LoginError):
    """The account is locked after too many wrong passwords.

    Its message is that of any refused login, so the answer tells no one whether the
    account exists; only the audit log records the lock.
    """

    def __init__(self, message: str, *, until: float) -> None:
        super().__init__(message)
        self.until = until


class LoginRateLimitedError(AuthError):
    """Too many login attempts from one client address."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermissionDeniedError(AuthError, PermissionError):
    """The officer's role does not allow the action."""


class CsrfError(AuthError, PermissionError):
    """A state-changing request came without the CSRF token of its session."""


class AccountError(AuthError, ValueError):
    """An account change was refused; the message says why."""
