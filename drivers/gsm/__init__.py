"""GSM modem driver: an asyncio pool of AT modems in PDU mode, and an AT-modem simulator.

Layers: ``codec`` and ``pdu`` (pure functions, TS 23.038 / 23.040) → ``session`` (pyserial,
one command in flight, unsolicited lines routed out) → ``modem`` (one modem, blocking) →
``pool`` (asyncio, routing, failover, reports). ``simulator`` serves the same protocol on a pty.
Errors: see ``drivers.gsm.errors``.
"""

from drivers.gsm.codec import SmsEncoding, segment_count, split_text
from drivers.gsm.config import GsmModemConfig, GsmPoolConfig, ReportMode
from drivers.gsm.errors import (
    GsmCommandError,
    GsmConfigError,
    GsmError,
    GsmInvalidNumberError,
    GsmInvalidTextError,
    GsmMessageTooLongError,
    GsmModemFaultError,
    GsmNetworkError,
    GsmNoModemError,
    GsmPermanentError,
    GsmPortError,
    GsmProtocolError,
    GsmRejectedError,
    GsmRetryableError,
    GsmTimeoutError,
)
from drivers.gsm.pdu import ReportStatus, normalize_number
from drivers.gsm.pool import GsmModemPool
from drivers.gsm.results import (
    DeliveryReport,
    ModemHealth,
    ModemState,
    SegmentSubmission,
    SmsResume,
    SmsSubmission,
)

__all__ = [
    "DeliveryReport",
    "GsmCommandError",
    "GsmConfigError",
    "GsmError",
    "GsmInvalidNumberError",
    "GsmInvalidTextError",
    "GsmMessageTooLongError",
    "GsmModemConfig",
    "GsmModemFaultError",
    "GsmModemPool",
    "GsmNetworkError",
    "GsmNoModemError",
    "GsmPermanentError",
    "GsmPoolConfig",
    "GsmPortError",
    "GsmProtocolError",
    "GsmRejectedError",
    "GsmRetryableError",
    "GsmTimeoutError",
    "ModemHealth",
    "ModemState",
    "ReportMode",
    "ReportStatus",
    "SegmentSubmission",
    "SmsEncoding",
    "SmsResume",
    "SmsSubmission",
    "normalize_number",
    "segment_count",
    "split_text",
]
