"""The one exception tree of the core, split by whether a retry makes sense.

::

    BroadcasterError
    ├── ConfigError (ValueError)          bad configuration; names the key and the problem
    ├── CapError (ValueError)             CAP input rejected; carries every Problem found
    │   ├── UnreachableAreaError          valid, but its areas select no target at all
    │   └── OutsideDivisionError          valid, but its areas reach beyond this node's division
    ├── StoreError                        the alert store cannot do what was asked
    │   └── DiskFullError                 the data directory's filesystem is full; nothing stored
    ├── ApprovalError (PermissionError)   an approval or rejection is not allowed
    ├── PluginError                       a channel plugin failed to load or is misconfigured
    ├── DeployError                       an install, backup or restore step cannot be done
    └── ChannelError                      raised by channels from ``send``/``cancel``/``start``
        ├── RetryableError                the same delivery may succeed later
        │   ├── DeviceUnavailableError (ConnectionError)
        │   │   └── DeviceElsewhereError  another node holds the device: route it there
        │   └── DeviceTimeoutError (TimeoutError)
        └── PermanentError                retrying the same delivery will not help
            ├── TargetRejectedError       the target refused or no longer exists
            └── UnsupportedError          the channel cannot carry this message

Channels map foreign errors (driver, HTTP, OS) onto this tree with ``raise ... from``; the
dispatcher decides retry, failure and expiry from the class alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broadcaster.cap.problems import Problem


class BroadcasterError(Exception):
    """Base of every error the core raises on purpose."""


class ConfigError(BroadcasterError, ValueError):
    """The configuration is invalid; the message names the key and the problem."""


class DeployError(BroadcasterError):
    """An install, backup or restore step cannot be done; the message says why and what to do."""


class CapError(BroadcasterError, ValueError):
    """A CAP document was rejected; ``problems`` lists every error and warning found."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class UnreachableAreaError(CapError):
    """A valid alert whose areas select no target on any of its channels: it would reach no one.

    ``problems`` names each area (``areaDesc``, geocodes, polygon bounds); nothing was stored.
    """


class OutsideDivisionError(CapError):
    """A valid alert whose areas reach beyond the division this node serves (``[node]``):
    a county node's officers warn their own county, a city node's its counties."""


class StoreError(BroadcasterError):
    """The alert store refused or failed an operation."""


class DiskFullError(StoreError):
    """A write found the data directory's filesystem full; it was rolled back, nothing stored."""


class StoreUnavailableError(StoreError):
    """The database server could not be reached; nothing was stored, try again shortly."""


class ApprovalError(BroadcasterError, PermissionError):
    """An approval or rejection is not allowed (self-approval, not pending, expired)."""


class PluginError(BroadcasterError):
    """A channel plugin could not be loaded or configured."""


class ChannelError(BroadcasterError):
    """Raised by a channel for a delivery it could not complete."""


class RetryableError(ChannelError):
    """The delivery may succeed later; the dispatcher retries it until the alert expires.

    ``retry_after`` (seconds), when set, is the earliest sensible retry (HTTP Retry-After).
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeviceUnavailableError(RetryableError, ConnectionError):
    """The device or service could not be reached."""


class DeviceElsewhereError(DeviceUnavailableError):
    """Another node of the cluster holds the device (its lease): ``node`` names it.

    On a shared store the dispatcher queues the delivery again at once for that node only
    (until a lease period has passed); without one it is retried after ``retry_after``.
    """

    def __init__(self, message: str, node: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.node = node


class DeviceTimeoutError(RetryableError, TimeoutError):
    """The device or service did not answer in time."""


class PermanentError(ChannelError):
    """Retrying the same delivery will not help; it is marked failed."""


class TargetRejectedError(PermanentError):
    """The target refused the message or no longer exists."""


class UnsupportedError(PermanentError):
    """The channel cannot carry this message."""
