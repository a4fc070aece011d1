"""SMPP 3.4 command_status values (§5.1.3) and what each means for a retry.

Throttling and queue-full ask for the same segment later; system errors and bind-state errors
are passing faults of the SMSC; address, length and parameter errors will not change with a
retry.
"""

from __future__ import annotations

from drivers.smsgw.errors import (
    GatewayBindError,
    GatewayRejectedError,
    GatewayStatusError,
    GatewayThrottledError,
    GatewayTransientError,
)

ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RINVMSGID = 0x0C
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RINVSERTYP = 0x15
ESME_RINVESMCLASS = 0x43
ESME_RSUBMITFAIL = 0x45
ESME_RINVSRCTON = 0x48
ESME_RINVSRCNPI = 0x49
ESME_RINVDSTTON = 0x50
ESME_RINVDSTNPI = 0x51
ESME_RINVSYSTYP = 0x53
ESME_RTHROTTLED = 0x58
ESME_RINVSCHED = 0x61
ESME_RINVEXPIRY = 0x62
ESME_RX_T_APPN = 0x64
ESME_RX_P_APPN = 0x65
ESME_RX_R_APPN = 0x66
ESME_RINVOPTPARSTREAM = 0xC0
ESME_ROPTPARNOTALLWD = 0xC1
ESME_RINVPARLEN = 0xC2
ESME_RMISSINGOPTPARAM = 0xC3
ESME_RINVOPTPARAMVAL = 0xC4
ESME_RDELIVERYFAILURE = 0xFE
ESME_RUNKNOWNERR = 0xFF

NAMES = {
    value: name
    for name, value in globals().items()
    if name.startswith("ESME_") and isinstance(value, int)
}

THROTTLED = frozenset({ESME_RTHROTTLED})
TRANSIENT = frozenset(
    {
        ESME_RMSGQFUL,  # the SMSC's queue for this ESME or destination is full
        ESME_RSYSERR,  # SMSC system error
        ESME_RINVBNDSTS,  # the bind is in the wrong state: another bind will do
        ESME_RX_T_APPN,  # ESME receiver temporary error
        ESME_RSUBMITFAIL,  # submit failed without a reason
        ESME_RDELIVERYFAILURE,
        ESME_RUNKNOWNERR,
    }
)
BIND_REFUSALS = frozenset(
    {ESME_RBINDFAIL, ESME_RINVPASWD, ESME_RINVSYSID, ESME_RINVSYSTYP, ESME_RALYBND}
)


def status_name(status: int) -> str:
    """The §5.1.3 name of a command_status, or a label for reserved / vendor values."""
    if status in NAMES:
        return NAMES[status]
    return "vendor-specific" if 0x400 <= status <= 0x4FF else "reserved"


def status_error(status: int, command: str) -> GatewayStatusError:
    """The exception for a refusal: throttled, transient, bind refused or rejected for good."""
    name = status_name(status)
    if status in THROTTLED:
        return GatewayThrottledError("SMPP", status, name, command)
    if status in TRANSIENT or 0x400 <= status <= 0x4FF:
        return GatewayTransientError("SMPP", status, name, command)
    if command.startswith("bind"):
        return GatewayBindError("SMPP", status, name, command)
    return GatewayRejectedError("SMPP", status, name, command)
