"""RDS encoder drivers: UECP (EBU SPB 490) and an ASCII command dialect, plus a simulator.

Layers, each usable on its own::

    charset        RDS basic character set (EN 50067 Annex E)        pure functions
    uecp_frame     framing, stuffing, CRC-16/GENIBUS (SPB 490)        pure functions
    uecp_elements  PI, PS, TA/TP, PTY, RT, EWS, ACK (SPB 490)         pure functions
    transport      socket://host:port or a serial/pty path           asyncio + pyserial
    client         RdsEncoderClient: session, ACK wait, retransmit   abstract base
    uecp_client    UecpEncoderClient
    ascii_client   AsciiEncoderClient
    alert          AlertSequence: raise TA, show, play, always restore
    simulator      RdsEncoderSimulator over TCP and pty (``broadcaster sim rds``)

Make a client with :func:`make_encoder_client` from a config or a URL; errors are the tree in
:mod:`drivers.rds.errors`. This package imports nothing of the rest of the project.
"""

from __future__ import annotations

from drivers.rds.alert import AlertContent, AlertSequence, AlertStep
from drivers.rds.ascii_client import AsciiEncoderClient
from drivers.rds.client import RdsEncoderClient
from drivers.rds.config import Dialect, RdsEncoderConfig
from drivers.rds.errors import (
    RdsConfigError,
    RdsError,
    RdsFrameError,
    RdsLinkError,
    RdsRejectedError,
    RdsTimeoutError,
    RdsUnsupportedError,
    RdsValueError,
)
from drivers.rds.simulator import RdsEncoderSimulator
from drivers.rds.simulator_device import RdsSimulatorFaults
from drivers.rds.state import EncoderState, Pty
from drivers.rds.uecp_client import UecpEncoderClient
from drivers.rds.uecp_elements import EwsPayload

CLIENT_CLASSES: dict[Dialect, type[RdsEncoderClient]] = {
    "uecp": UecpEncoderClient,
    "ascii": AsciiEncoderClient,
}


def make_encoder_client(config: RdsEncoderConfig | str) -> RdsEncoderClient:
    """A client (not yet connected) for ``config`` or an encoder URL; ``await client.connect()``."""
    if isinstance(config, str):
        config = RdsEncoderConfig.from_url(config)
    return CLIENT_CLASSES[config.dialect](config)


__all__ = [
    "CLIENT_CLASSES",
    "AlertContent",
    "AlertSequence",
    "AlertStep",
    "AsciiEncoderClient",
    "EncoderState",
    "EwsPayload",
    "Pty",
    "RdsConfigError",
    "RdsEncoderClient",
    "RdsEncoderConfig",
    "RdsEncoderSimulator",
    "RdsError",
    "RdsFrameError",
    "RdsLinkError",
    "RdsRejectedError",
    "RdsSimulatorFaults",
    "RdsTimeoutError",
    "RdsUnsupportedError",
    "RdsValueError",
    "UecpEncoderClient",
    "make_encoder_client",
]
