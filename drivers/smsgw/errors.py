"""The exception tree shared by the SMS-gateway drivers (SMPP, CMPP), split by retry sense.

::

    GatewayError
    ├── GatewayRetryableError                  sending the same segment again may work
    │   ├── GatewayTimeoutError (TimeoutError)         no answer within the request timeout
    │   ├── GatewayConnectionError (ConnectionError)   no bind up, or the connection dropped
    │   │   └── GatewayConnectionLostError             it dropped while this request was
    │   │                                              outstanding: the gateway may or may
    │   │                                              not have taken the segment
    │   ├── GatewayProtocolError                       the peer sent bytes that are no valid PDU
    │   ├── GatewayBusyError                           no room in the bind's window before the
    │   │                                              caller's deadline: nothing was sent
    │   ├── GatewayThrottledError                      SMPP ESME_RTHROTTLED, CMPP result 8
    │   └── GatewayTransientError                      other transient status (queue full,
    │                                                  system error)
    └── GatewayPermanentError                  retrying the same segment will fail the same way
        ├── GatewayRejectedError                       a status no retry will change
        │                                              (invalid destination, bad length)
        ├── GatewayBindError                           credentials or version refused
        ├── GatewayMessageError (ValueError)           the text or number cannot be sent
        └── GatewayConfigError (ValueError)            a setting is invalid

Each protocol maps its own status codes onto this tree (``drivers.smpp.status``,
``drivers.cmpp.status``); the exception then carries ``code`` and ``protocol``.
"""

from __future__ import annotations

from drivers.smsgw.results import SegmentResult


class GatewayError(Exception):
    """Base of every error the SMS-gateway drivers raise on purpose.

    ``accepted`` lists the segments of a multi-segment text the gateway took before this
    error stopped the rest (their receipts still arrive); empty for a single segment.
    """

    accepted: tuple[SegmentResult, ...] = ()


class GatewayRetryableError(GatewayError):
    """The segment was not accepted; sending it again later or on another bind may work."""


class GatewayPermanentError(GatewayError):
    """The segment cannot be sent as it is; retrying will fail the same way."""


class GatewayTimeoutError(GatewayRetryableError, TimeoutError):
    """The gateway did not answer a request within the configured time."""


class GatewayConnectionError(GatewayRetryableError, ConnectionError):
    """No bind is up, or the connection could not be opened."""


class GatewayConnectionLostError(GatewayConnectionError):
    """The connection dropped while the request was outstanding: its outcome is unknown."""


class GatewayProtocolError(GatewayRetryableError):
    """The peer sent bytes that do not decode as a PDU of the protocol."""


class GatewayBusyError(GatewayRetryableError):
    """The segment found no room in the window (and rate) before the caller's deadline; it
    was not sent."""


class GatewayStatusError(GatewayError):
    """Mixin for a refusal carrying the protocol's status or result code."""

    def __init__(self, protocol: str, code: int, name: str, command: str) -> None:
        super().__init__(f"{protocol} {command} refused with status {code:#x} ({name})")
        self.protocol = protocol
        self.code = code
        self.name = name
        self.command = command


class GatewayThrottledError(GatewayStatusError, GatewayRetryableError):
    """The gateway asks to slow down; the segment should be sent again after a pause."""


class GatewayTransientError(GatewayStatusError, GatewayRetryableError):
    """A passing fault of the gateway (queue full, system error)."""


class GatewayRejectedError(GatewayStatusError, GatewayPermanentError):
    """The gateway refused the segment for good (invalid destination, invalid length)."""


class GatewayBindError(GatewayStatusError, GatewayPermanentError):
    """The gateway refused the bind or connect (credentials, version, source address)."""


class GatewayMessageError(GatewayPermanentError, ValueError):
    """The text or destination cannot be sent (empty, too long, not a number)."""


class GatewayConfigError(GatewayPermanentError, ValueError):
    """A configuration value is invalid; the message names the setting."""
