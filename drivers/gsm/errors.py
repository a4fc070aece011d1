"""The exception tree of the GSM driver, split by whether a retry makes sense.

::

    GsmError
    ├── GsmRetryableError                 the same message may go through later or elsewhere
    │   ├── GsmTimeoutError (TimeoutError)        the modem did not answer in time (or stalled)
    │   ├── GsmPortError (ConnectionError)        the serial port could not be opened or vanished
    │   ├── GsmProtocolError                      the modem answered something unparseable
    │   ├── GsmCommandError                       ERROR or +CME ERROR to a command
    │   ├── GsmNetworkError                       +CMS ERROR 331/332/500 and other transient codes
    │   ├── GsmModemFaultError                    +CMS ERROR 310-318/330: this modem or SIM cannot
    │   │                                         send (no SIM, SMSC unknown); another modem may
    │   └── GsmNoModemError                       no healthy modem is available in the pool
    └── GsmPermanentError                 retrying the same message will not help
        ├── GsmInvalidNumberError (ValueError)    the destination is not a dialable number
        ├── GsmMessageTooLongError (ValueError)   the text is empty or needs too many segments
        ├── GsmInvalidTextError (ValueError)      the text holds what no SMS can carry
        ├── GsmRejectedError                      +CMS ERROR 304 and other permanent codes
        └── GsmConfigError (ValueError)           a modem or pool configuration is invalid

Codes follow 3GPP TS 27.005 §3.2.5 (``+CMS ERROR``). Foreign errors (pyserial, OS) are mapped
onto this tree at the session boundary with ``raise ... from``.
"""

from __future__ import annotations


class GsmError(Exception):
    """Base of every error the GSM driver raises on purpose."""


class GsmRetryableError(GsmError):
    """The message was not sent, and sending it again later or on another modem may work."""


class GsmPermanentError(GsmError):
    """The message cannot be sent as it is; retrying will fail the same way."""


class GsmTimeoutError(GsmRetryableError, TimeoutError):
    """The modem did not give a final result code within the configured time."""


class GsmPortError(GsmRetryableError, ConnectionError):
    """The serial port could not be opened, or it closed while in use."""


class GsmProtocolError(GsmRetryableError):
    """The modem answered with bytes that are not a valid reply to the command."""


class GsmCommandError(GsmRetryableError):
    """The modem answered a command with ``ERROR`` or ``+CME ERROR: <code>``."""

    def __init__(self, command: str, result: str) -> None:
        super().__init__(f"{command!r} failed with {result!r}")
        self.command = command
        self.result = result


class GsmNoModemError(GsmRetryableError):
    """No modem in the pool is healthy enough to take the message."""


class GsmCmsError(GsmError):
    """Mixin carrying the ``+CMS ERROR`` code reported by the modem."""

    def __init__(self, code: int, command: str) -> None:
        super().__init__(f"{command!r} failed with +CMS ERROR: {code} ({cms_error_name(code)})")
        self.code = code
        self.command = command


class GsmNetworkError(GsmCmsError, GsmRetryableError):
    """A transient network-side failure (no network, network timeout, unknown error)."""


class GsmModemFaultError(GsmCmsError, GsmRetryableError):
    """The modem or its SIM cannot send at all; the message may go through another modem."""


class GsmRejectedError(GsmCmsError, GsmPermanentError):
    """The modem or network refused the message for good (for example an invalid PDU)."""


class GsmInvalidNumberError(GsmPermanentError, ValueError):
    """The destination number is not a valid international or national number."""


class GsmMessageTooLongError(GsmPermanentError, ValueError):
    """The text does not fit in the allowed number of segments."""


class GsmInvalidTextError(GsmPermanentError, ValueError):
    """The text cannot be encoded at all (an unpaired UTF-16 surrogate)."""


class GsmConfigError(GsmPermanentError, ValueError):
    """A configuration value is invalid; the message names the key."""


_CMS_NAMES = {
    300: "ME failure",
    301: "SMS service of ME reserved",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}

# 27.005 §3.2.5 and 24.011 Annex E-2: these codes describe a passing state of the network or
# the modem (38 network out of order, 41 temporary failure, 42 congestion, 47 resources
# unavailable).
TRANSIENT_CMS_CODES = frozenset({38, 41, 42, 47, 300, 320, 322, 331, 332, 500})


def cms_error_name(code: int) -> str:
    """The 27.005 name of a ``+CMS ERROR`` code, or a generic label for unknown codes."""
    if code < 128:
        return "network rejection (TS 24.011 cause)"
    return _CMS_NAMES.get(code, "manufacturer specific")


# 27.005 §3.2.5: SIM missing, locked, failed, busy or wrong (310-318); SMSC address unknown (330).
MODEM_FAULT_CMS_CODES = frozenset({310, 311, 312, 313, 314, 315, 316, 317, 318, 330})


def cms_error(code: int, command: str) -> GsmCmsError:
    """Map a ``+CMS ERROR`` code onto the retryable or the permanent branch of the tree."""
    if code in MODEM_FAULT_CMS_CODES:
        return GsmModemFaultError(code, command)
    if code in TRANSIENT_CMS_CODES:
        return GsmNetworkError(code, command)
    return GsmRejectedError(code, command)
