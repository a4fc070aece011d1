"""What each SMS-gateway error becomes for the core: retried (paced) or failed for good.

The drivers sort every SMPP ``command_status`` and CMPP ``Result`` they know into their tree
(``drivers/smsgw/errors.py``; the tables are in ``drivers/README-sms-gateways.md``); this
module maps that tree onto the core's:

=============================================  ==============================
driver error (codes)                           core error
=============================================  ==============================
throttled (SMPP 0x58, CMPP 8), after the       RetryableError with retry_after
  bind's own pauses ran out
transient status (SMPP 0x04 0x08 0x14 0x45     RetryableError
  0x64 0xFE 0xFF 0x400-0x4FF; CMPP 3, > 13)
no answer in ``request_timeout``               DeviceTimeoutError
connection lost or refused, no bind up,        DeviceUnavailableError
  bind refused (account, password, version)
garbled PDU                                    RetryableError
invalid destination (SMPP 0x0B 0x50 0x51;      TargetRejectedError
  CMPP 13)
other refusals (SMPP 0x01 0x0A 0x43 0x48       PermanentError
  0x49 0x62 0xC0-0xC4 ...; CMPP 1 2 4-7 9-12)
text too long or uncodable                     UnsupportedError
=============================================  ==============================

A refused bind is a fault of the link, not of the number: the client keeps binding with
backoff and the deliveries wait (or go to the fallback channel), so an account fixed by the
operator delivers them.
"""

from __future__ import annotations

from broadcaster.errors import (
    ChannelError,
    DeviceTimeoutError,
    DeviceUnavailableError,
    PermanentError,
    RetryableError,
    TargetRejectedError,
    UnsupportedError,
)
from drivers.smsgw.errors import (
    GatewayBindError,
    GatewayConnectionError,
    GatewayError,
    GatewayMessageError,
    GatewayRejectedError,
    GatewayRetryableError,
    GatewayThrottledError,
    GatewayTimeoutError,
)

INVALID_DESTINATION = {"SMPP": frozenset({0x0B, 0x50, 0x51}), "CMPP": frozenset({13})}
"""Status codes that say the number itself is wrong."""


def channel_error(exc: GatewayError, number: str, retry_after: float | None = None) -> ChannelError:
    """The core's error for a driver error (see the module docstring)."""
    message = f"SMS to {number}: {exc}"
    if isinstance(exc, GatewayThrottledError):
        return RetryableError(message, retry_after=retry_after)
    if isinstance(exc, GatewayTimeoutError):
        return DeviceTimeoutError(message)
    if isinstance(exc, GatewayConnectionError | GatewayBindError):
        return DeviceUnavailableError(message)
    if isinstance(exc, GatewayRetryableError):
        return RetryableError(message)
    if isinstance(exc, GatewayRejectedError):
        if exc.code in INVALID_DESTINATION.get(exc.protocol, frozenset()):
            return TargetRejectedError(message)
        return PermanentError(message)
    if isinstance(exc, GatewayMessageError):
        return UnsupportedError(message)
    return PermanentError(message)
