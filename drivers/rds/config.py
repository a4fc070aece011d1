"""Settings of one RDS encoder link, validated once, readable from a URL.

An encoder is named by a URL: ``socket://host:port`` for TCP, or a serial or pty device
path (``/dev/ttyUSB0``, ``/dev/pts/3``), optionally followed by settings as a query::

    socket://10.0.0.7:4001?dialect=uecp&site=12&encoder=3&ack_timeout=0.5
    /dev/ttyS1?dialect=ascii&baudrate=19200

Bad values raise :class:`~drivers.rds.errors.RdsConfigError` naming the setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal, get_args
from urllib.parse import parse_qsl

from drivers.rds.errors import RdsConfigError
from drivers.rds.state import EncoderState
from drivers.rds.uecp_frame import MAX_ENCODER_ADDRESS, MAX_SITE_ADDRESS

Dialect = Literal["uecp", "ascii"]

_QUERY_KEYS = {
    "dialect": "dialect",
    "site": "site_address",
    "encoder": "encoder_address",
    "dsn": "data_set",
    "psn": "programme_service",
    "baudrate": "baudrate",
    "connect_timeout": "connect_timeout",
    "ack_timeout": "ack_timeout",
    "attempts": "max_attempts",
    "bidirectional": "bidirectional",
}


@dataclass(frozen=True, slots=True)
class RdsEncoderConfig:
    """How to reach one encoder and how patiently to wait for its acknowledgements.

    ``normal_state`` is the station's everyday PS/RT/PTY/TP: the state a client reports
    from :meth:`~drivers.rds.client.RdsEncoderClient.snapshot` before it has set anything.
    ``bidirectional`` (UECP only) asks the encoder on every connection to answer every
    message (communication mode 2); turn it off for encoders set up that way by hand.
    """

    url: str
    dialect: Dialect = "uecp"
    site_address: int = 0
    encoder_address: int = 0
    data_set: int = 0
    programme_service: int = 0
    baudrate: int = 9600
    connect_timeout: float = 5.0
    ack_timeout: float = 1.0
    max_attempts: int = 3
    bidirectional: bool = True
    normal_state: EncoderState = field(default_factory=EncoderState)

    def __post_init__(self) -> None:
        if not self.url:
            raise RdsConfigError("url: empty; give socket://host:port or a device path")
        if self.url.startswith("socket://"):
            _split_host_port(self.url)
        if self.dialect not in get_args(Dialect):
            raise RdsConfigError(f"dialect: {self.dialect!r} is not one of {get_args(Dialect)}")
        _check_int("site_address", self.site_address, MAX_SITE_ADDRESS)
        _check_int("encoder_address", self.encoder_address, MAX_ENCODER_ADDRESS)
        _check_int("data_set", self.data_set, 0xFF)
        _check_int("programme_service", self.programme_service, 0xFF)
        _check_int("max_attempts", self.max_attempts, 100, low=1)
        _check_int("baudrate", self.baudrate, 4_000_000, low=50)
        for name in ("connect_timeout", "ack_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 < value <= 600:
                raise RdsConfigError(f"{name}: {value!r} is not a number of seconds in (0, 600]")

    @classmethod
    def from_url(cls, url: str, **overrides: object) -> RdsEncoderConfig:
        """Read a config from ``url`` with settings in its query string."""
        base, _, query = url.partition("?")
        values: dict[str, object] = {}
        types = {f.name: f.type for f in fields(cls)}
        for key, raw in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
            name = _QUERY_KEYS.get(key)
            if name is None:
                raise RdsConfigError(f"{key}: unknown setting in encoder URL {url!r}")
            values[name] = _convert(key, raw, types[name])
        values.update(overrides)
        return cls(url=base, **values)  # type: ignore[arg-type]

    def host_port(self) -> tuple[str, int]:
        """Host and port of a ``socket://`` URL."""
        return _split_host_port(self.url)


def _convert(key: str, raw: str, annotation: object) -> object:
    if annotation == "bool":
        if raw.lower() not in ("0", "1", "true", "false", "yes", "no"):
            raise RdsConfigError(f"{key}: {raw!r} is not a yes/no value")
        return raw.lower() in ("1", "true", "yes")
    try:
        if annotation == "int":
            return int(raw)
        if annotation == "float":
            return float(raw)
    except ValueError as error:
        raise RdsConfigError(f"{key}: {raw!r} is not a {annotation}") from error
    return raw


def _check_int(name: str, value: object, high: int, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RdsConfigError(f"{name}: {value!r} is not an integer in {low}..{high}")


def _split_host_port(url: str) -> tuple[str, int]:
    rest = url.removeprefix("socket://").rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RdsConfigError(f"url: {url!r} is not socket://host:port")
    return host.strip("[]"), int(port)
