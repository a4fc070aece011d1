"""Configuration: one TOML file, validated once at load into typed models.

Every problem is reported at once, each naming its dotted key (``channels.sms.concurrency``).
Secrets are :class:`~broadcaster.configbase.Secret` values (inline, ``{ env = "NAME" }`` or
``{ file = "/path" }``, masked wherever shown), re-exported here with ``SecretValue``, ``MASK``
and ``StrictModel`` for channels; the models of a node among others are in
:mod:`broadcaster.federationconfig`. Relative paths are resolved against the directory of the
configuration file.
:func:`config_problems` validates as far as it can and returns every problem;
:mod:`broadcaster.preflight` adds the checks of the files it names.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from broadcaster.cap.problems import IntakePolicy
from broadcaster.configbase import MASK as MASK
from broadcaster.configbase import Secret as Secret
from broadcaster.configbase import SecretValue as SecretValue
from broadcaster.configbase import StrictModel as StrictModel
from broadcaster.errors import ConfigError
from broadcaster.federationconfig import NeighbourConfig, NodeConfig, UpstreamConfig
from broadcaster.store.db import ConnectionLimits


class ServerConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Path("data")
    public_url: str | None = None
    sender: str = Field("broadcaster@localhost", pattern=r"^[^\s,<&]+$")
    sender_name: str = "broadcaster"
    timezone: str = Field(
        "Asia/Shanghai",
        description="IANA time zone in which the console, public pages and texts for residents"
        " show times",
    )
    max_body_bytes: int = Field(1_048_576, ge=1024)
    header_timeout_seconds: float = Field(
        15.0,
        gt=0,
        description="a connection that has not sent a complete request header this long after"
        " opening or after its last answer is closed (slow or silent clients)",
    )
    body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="a request body must arrive whole within this time of its header, or the"
        " request is answered 408 and the connection closed (clients trickling a body)",
    )
    connections_per_client: int = Field(
        32,
        ge=1,
        description="open connections allowed from one address (trusted proxies and"
        " shared_addresses: any)",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="reverse proxies (addresses or networks) whose X-Forwarded-For names the"
        " client, for per-client limits and logs",
    )
    shared_addresses: list[str] = Field(
        default_factory=list,
        description="addresses or networks that many clients share (the boxes' network, a"
        " mobile operator's NAT): not held to connections_per_client, their X-Forwarded-For"
        " not trusted",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known IANA time zone") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @field_validator("trusted_proxies", "shared_addresses")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value


class ApiTokenConfig(StrictModel):
    name: str = Field(min_length=1)
    token: SecretValue
    requires_approval: bool = Field(
        False,
        description="alerts and cancels from this client wait for an officer's approval; it"
        " cannot approve or reject, nor create, change or run schedules",
    )
    intake: IntakePolicy | None = Field(
        None, description="overrides [cap] intake for the alerts of this client"
    )
    node: str | None = Field(
        None,
        pattern=r"^[0-9]{6}([0-9]{6})?$",
        description="the county node (its division code) this token belongs to: it may report"
        " the delivery state of alerts relayed to that node, and nothing else",
    )


class ApprovalConfig(StrictModel):
    """The two-person rule: who may send without a second officer."""

    single_officer_severities: list[
        Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
    ] = Field(default_factory=list, description="severities one officer may send, with a reason")


class ApiConfig(StrictModel):
    tokens: list[ApiTokenConfig] = Field(default_factory=list)


class DispatcherConfig(StrictModel):
    default_expiry_minutes: float = Field(360, gt=0)
    retry_base_seconds: float = Field(2.0, gt=0)
    retry_max_seconds: float = Field(300.0, gt=0)
    confirm_timeout_seconds: float = Field(600.0, gt=0)
    send_timeout_seconds: float = Field(60.0, gt=0)
    batch_size: int = Field(500, ge=1, le=10_000)
    idle_poll_seconds: float = Field(1.0, gt=0)


class CapConfig(StrictModel):
    """CAP input policy (repairs, signatures) and signing of the alerts this server writes."""

    intake: IntakePolicy = Field(
        "repair",
        description="repair: accept documents whose only CAP errors are repairable, repaired; "
        "strict: refuse every CAP error",
    )

    trusted_certificates: list[Path] = Field(
        default_factory=list, description="PEM certificates whose signatures are trusted"
    )
    reject_bad_signatures: bool = Field(
        True, description="refuse alerts whose signature does not match their content"
    )
    require_trusted_signature: bool = Field(
        False, description="refuse alerts that are unsigned or signed by an untrusted key"
    )
    signing_key: Path | None = Field(None, description="PEM private key for alerts we write")
    signing_certificate: Path | None = None


class AudioConfig(StrictModel):
    """``[audio]``: speech engines in fallback order and their settings."""

    engine_order: tuple[Literal["edge-tts", "espeak-ng", "piper"], ...] = ("edge-tts", "espeak-ng")
    edge_tts_timeout_seconds: float = Field(10.0, gt=0)
    edge_tts_proxy: str | None = None
    keep_days: float = Field(
        30,
        gt=0,
        description="renders and published audio files unused this long are deleted (daily)",
    )


class ConsoleConfig(StrictModel):
    """The officers' web console: sessions, login lockout, hazard templates, audio preview."""

    enabled: bool = True
    session_hours: float = Field(12, gt=0, description="a session ends this long after login")
    idle_minutes: float = Field(30, gt=0, description="a session ends after this long unused")
    cookie_secure: bool | None = Field(
        None, description="Secure cookies; default: when server.public_url is https"
    )
    lockout_after: int = Field(5, ge=1, description="wrong passwords in a row that lock")
    lockout_minutes: float = Field(15, gt=0)
    login_attempts_per_minute: int = Field(20, ge=1, description="per client address")
    min_password_length: int = Field(10, ge=8)
    templates: Path | None = Field(None, description="hazard templates folder")
    audio_preview: bool = Field(True, description="render the audio in the preview")


class RegistryConfig(StrictModel):
    divisions: Path | None = None
    targets: Path | None = None


class ChannelConfig(BaseModel):
    """Settings every channel instance has; a channel's own model extends this one."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    type: str = Field(min_length=1)
    display_name: str | None = Field(
        None,
        min_length=1,
        description="the channel's name for officers; by default a Chinese name for its type",
    )
    enabled: bool = True
    concurrency: int = Field(16, ge=1, le=10_000)
    rate_per_second: float = Field(0.0, ge=0, description="0 means no limit")
    confirm_timeout_seconds: float | None = Field(None, gt=0)
    start_timeout_seconds: float = Field(
        60.0, gt=0, description="a channel whose start takes longer is reported broken"
    )


class StoreConfig(StrictModel):
    """Where the store lives: the SQLite file in the data directory unless ``url`` is set."""

    url: SecretValue | None = Field(
        None,
        description="postgresql://user:password@host:port/dbname (libpq form; may hold a "
        "password, so it may also be { env = NAME } or { file = PATH }); absent: SQLite",
    )
    node: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="this node's name in claims and leases (unique per running node); "
        "default: host, process id and a random part",
    )
    lease_seconds: float = Field(
        30.0,
        ge=2,
        le=3600,
        description="how long a node's claim on a delivery or device lasts unless renewed; "
        "another node resumes the work of a node silent this long",
    )
    statement_timeout_seconds: float = Field(
        10.0,
        ge=1,
        le=3600,
        description="PostgreSQL: the longest one statement or a new connection may take; a "
        "server that does not answer within it counts as unreachable (the API answers 503, "
        "the dispatcher pauses) instead of holding the call",
    )
    keepalive_idle_seconds: int = Field(
        10,
        ge=1,
        le=3600,
        description="PostgreSQL over TCP: silence on a connection before keepalive probes start",
    )
    keepalive_interval_seconds: int = Field(
        5, ge=1, le=600, description="PostgreSQL over TCP: time between keepalive probes"
    )
    keepalive_count: int = Field(
        3,
        ge=1,
        le=100,
        description="PostgreSQL over TCP: unanswered probes after which the connection is "
        "dropped (also the limit on unacknowledged data: idle + interval × count seconds)",
    )

    def limits(self) -> ConnectionLimits:
        """The PostgreSQL time limits and keepalive settings of this section."""
        return ConnectionLimits(
            self.statement_timeout_seconds,
            self.keepalive_idle_seconds,
            self.keepalive_interval_seconds,
            self.keepalive_count,
        )

    @field_validator("url")
    @classmethod
    def _postgresql_only(cls, value: Secret | None) -> Secret | None:
        if value is not None and not value.reveal().startswith(("postgresql://", "postgres://")):
            raise ValueError("only postgresql:// URLs are supported (absent: the SQLite file)")
        return value


class Config(StrictModel):
    server: ServerConfig = Field(default_factory=ServerConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    dispatcher: DispatcherConfig = Field(default_factory=DispatcherConfig)
    approval: ApprovalConfig = Field(default_factory=ApprovalConfig)
    cap: CapConfig = Field(default_factory=CapConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict, repr=False)
    """Raw channel tables: validated by each channel's own model; may hold secrets."""
    scheduler: dict[str, Any] = Field(default_factory=dict)
    """Raw ``[scheduler]`` table: validated by :mod:`broadcaster.scheduler.config`."""
    source: Path | None = None
    upstream: list[UpstreamConfig] = Field(default_factory=list)
    """``[[upstream]]``: sources this node takes alerts from (:mod:`broadcaster.upstream`)."""
    neighbour: list[NeighbourConfig] = Field(default_factory=list)
    """``[[neighbour]]``: nodes this one shares a filtered, signed feed with."""
    node: NodeConfig = Field(default_factory=NodeConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)

    def channel_base(self, name: str) -> ChannelConfig:
        """The common settings of channel instance ``name`` (already validated at load)."""
        return ChannelConfig.model_validate(_common_channel_keys(self.channels[name]))


def _common_channel_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k in ChannelConfig.model_fields}


def format_validation_error(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem: ``key.path: message``; a value where a table belongs is named
    in TOML's words, as the configuration's own checks name it."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        key = f"{prefix}.{key}" if prefix and key else (prefix or key)
        message = "must be a table" if err["type"] == "dict_type" else err["msg"]
        lines.append(f"{key or '(top level)'}: {message}")
    return lines


def _resolve(base: Path, path: Path | None) -> Path | None:
    if path is None or path.is_absolute():
        return path
    return (base / path).resolve()


def parse_config(data: Mapping[str, Any], *, base_dir: Path, source: Path | None) -> Config:
    """Validate configuration data; raises ConfigError listing every problem with its key."""
    config, problems = config_problems(data, base_dir=base_dir, source=source)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return config


def config_problems(
    data: Mapping[str, Any], *, base_dir: Path, source: Path | None
) -> tuple[Config, list[str]]:
    """The configuration as far as it is valid, and every problem found (``key: message``).

    A section with problems is replaced by its defaults, so that the checks that follow (the
    files the other sections name) still run and all problems are reported in one go.
    """
    problems: list[str] = []
    try:
        config = Config.model_validate({**data, "source": source})
    except ValidationError as exc:
        problems.extend(format_validation_error(exc))
        config = _valid_sections(data, source)
    channels = data.get("channels", {})
    if isinstance(channels, Mapping):
        for name, raw in channels.items():
            if not isinstance(raw, Mapping):
                problems.append(f"channels.{name}: must be a table")
                continue
            try:
                ChannelConfig.model_validate(_common_channel_keys(raw) | {"type": raw.get("type")})
            except ValidationError as exc:
                problems.extend(format_validation_error(exc, f"channels.{name}"))
    # Imported here: the scheduler's models are built on this module's.
    from broadcaster.scheduler.config import check_scheduler_table

    problems.extend(check_scheduler_table(data))
    problems.extend(_node_problems(config))
    registry = RegistryConfig(
        divisions=_resolve(base_dir, config.registry.divisions),
        targets=_resolve(base_dir, config.registry.targets),
    )
    cap = config.cap.model_copy(
        update={
            "trusted_certificates": [
                p for p in (_resolve(base_dir, c) for c in config.cap.trusted_certificates) if p
            ],
            "signing_key": _resolve(base_dir, config.cap.signing_key),
            "signing_certificate": _resolve(base_dir, config.cap.signing_certificate),
        }
    )
    if (cap.signing_key is None) != (cap.signing_certificate is None):
        problems.append("cap: signing_key and signing_certificate go together")
    console = config.console.model_copy(
        update={"templates": _resolve(base_dir, config.console.templates)}
    )
    resolved = config.model_copy(update={"registry": registry, "cap": cap, "console": console})
    return resolved, list(dict.fromkeys(problems))


def _node_problems(config: Config) -> list[str]:
    """Each ``[[node.report_to]]`` entry names an API client that exists."""
    clients = {t.name for t in config.api.tokens}
    return [
        f"node.report_to[{i}].client: no [[api.tokens]] entry is named {entry.client!r}"
        for i, entry in enumerate(config.node.report_to)
        if entry.client not in clients
    ]


def _valid_sections(data: Mapping[str, Any], source: Path | None) -> Config:
    """A configuration of the sections of ``data`` that validate alone; defaults elsewhere.
    Of the channels, the tables are kept (an entry that is no table is reported on its own)."""
    valid: dict[str, Any] = {}
    for name, value in data.items():
        if name == "channels" and isinstance(value, Mapping):
            value = {key: table for key, table in value.items() if isinstance(table, Mapping)}
        try:
            Config.model_validate({name: value})
        except ValidationError:
            continue
        valid[name] = value
    return Config.model_validate({**valid, "source": source})


def load_config(path: Path) -> Config:
    """Read and validate a TOML configuration file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, base_dir=path.resolve().parent, source=path)


def demo_config_path() -> Path:
    """The demo configuration shipped in the repository's ``config/`` folder."""
    return Path(__file__).resolve().parent.parent / "config" / "demo.toml"
