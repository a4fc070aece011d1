"""Configuration: one TOML file, validated once at load into typed models.

Every problem is reported at once, each naming its dotted key (``channels.sms.concurrency``).
Secrets are :class:`Secret` values: given inline, from an environment variable
(``{ env = "NAME" }``) or from a file (``{ file = "/etc/broadcaster/key" }``, which others may
not read and only its owner may write); their ``repr``, ``str`` and JSON dump are masked, so
logs, pages and ``check-config`` never show them. An inline string is the secret itself, so one
that reads like a reference (``"env:NAME"``, ``"file:/path"``, ``"${NAME}"``, ``"$NAME"``) is
refused with the form to write instead, rather than used as a key anyone can read in the
documentation. Relative paths are resolved against the directory of the configuration file.
:func:`config_problems` validates as far as it can and returns every problem;
:mod:`broadcaster.preflight` adds the checks of the files it names.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from broadcaster.cap.problems import IntakePolicy
from broadcaster.divisions import code_level
from broadcaster.errors import ConfigError

MASK = "**********"
_UNSAFE_SECRET_MODE = 0o027  # group write, or any access by others


class Secret:
    """A secret string that never shows itself in ``str``, ``repr`` or a config dump."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: call only where it is used (an HMAC, a header)."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


_ENV_REFERENCE = re.compile(r"^\s*(?:env:|\$\{.*\}\s*$|\$[A-Za-z_][A-Za-z0-9_]*\s*$)", re.I)
_FILE_REFERENCE = re.compile(r"^\s*file:", re.I)


def _refuse_reference(value: str) -> None:
    """Refuse an inline secret that reads like a reference (the value is never shown)."""
    if _FILE_REFERENCE.match(value):
        form, kind = '{ file = "/path" }', "a file"
    elif _ENV_REFERENCE.match(value):
        form, kind = '{ env = "NAME" }', "an environment variable"
    else:
        return
    raise ValueError(
        f"this string reads like a reference to {kind}, but a string is taken as the secret"
        f" itself; write {form} to read the secret from {kind}"
    )


def _load_secret(value: object) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        if not value:
            raise ValueError("a secret must not be empty")
        _refuse_reference(value)
        return Secret(value)
    if isinstance(value, Mapping):
        if set(value) == {"env"}:
            name = str(value["env"])
            found = os.environ.get(name)
            if not found:
                raise ValueError(f"environment variable {name} is not set or empty")
            return Secret(found)
        if set(value) == {"file"}:
            path = Path(str(value["file"]))
            try:
                mode = path.stat().st_mode & 0o777
                text = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
            if mode & _UNSAFE_SECRET_MODE:
                raise ValueError(
                    f"secret file {path} has mode {mode:04o}: others may read it or its group "
                    "may change it; chmod 600 (or 640 for a trusted group)"
                )
            if not text:
                raise ValueError(f"secret file {path} is empty")
            return Secret(text)
    raise ValueError('a secret is a string, { env = "NAME" } or { file = "PATH" }')


SecretValue = Annotated[
    Secret,
    BeforeValidator(_load_secret),
    PlainSerializer(lambda _s: MASK, return_type=str),
    WithJsonSchema({"type": "string"}),
]


class StrictModel(BaseModel):
    """Base for configuration models: unknown keys are errors, values are checked on load."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)


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
        32, ge=1, description="open connections allowed from one address (trusted proxies: any)"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="reverse proxies (addresses or networks) whose X-Forwarded-For names the"
        " client, for per-client limits and logs",
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

    @field_validator("trusted_proxies")
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
        " the delivery state of alerts relayed to that node",
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


_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class UpstreamConfig(StrictModel):
    """One ``[[upstream]]`` source: the region's platform, a neighbour, another node.

    ``push`` sources submit to ``POST /api/v1/alerts`` with their own ``token`` (which names
    the source); ``poll`` sources are fetched from ``url``, a CAP Atom feed or a plain index
    of CAP URLs, every ``interval_seconds``.
    """

    name: str = Field(pattern=_NAME_PATTERN)
    mode: Literal["push", "poll"]
    token: SecretValue | None = Field(
        None, description="push: the source's bearer token; poll: sent to the feed's host"
    )
    url: str | None = Field(None, pattern=r"^https?://[^\s/]+", description="poll: the feed")
    format: Literal["atom", "index"] = "atom"
    interval_seconds: float = Field(60.0, gt=0)
    backoff_max_seconds: float = Field(900.0, gt=0, description="cap of the wait after errors")
    timeout_seconds: float = Field(10.0, gt=0, description="a whole fetch, redirects included")
    max_bytes: int = Field(1_048_576, ge=1024, description="largest feed or CAP document")
    allowed_hosts: list[str] = Field(
        default_factory=list, description="hosts entry links may name besides the feed's own"
    )
    require_signature: bool = Field(False, description="only CAP signed by a trusted key")
    trusted_certificates: list[Path] = Field(default_factory=list)
    areas: list[str] = Field(
        default_factory=list,
        description="division codes of our area (default: every root of registry.divisions)",
    )
    policy: Literal["auto", "review"] = "auto"
    channels: list[str] | None = Field(None, description="channels to use (default: all)")

    @model_validator(mode="after")
    def _mode_needs(self) -> UpstreamConfig:
        if self.mode == "push" and self.token is None:
            raise ValueError("a push source needs a token")
        if self.mode == "poll" and self.url is None:
            raise ValueError("a polled source needs a url")
        return self

    @field_validator("url")
    @classmethod
    def _no_credentials_in_url(cls, value: str | None) -> str | None:
        if value is not None and "@" in value.split("/")[2]:
            raise ValueError("a feed URL must not carry credentials")
        return value


def _public_only() -> list[Literal["Public", "Restricted", "Private"]]:
    return ["Public"]


class NeighbourConfig(StrictModel):
    """One ``[[neighbour]]``: served ``/feeds/<name>.atom`` with what its rules allow, and
    optionally sent the same alerts at ``push_url`` (its ``POST /api/v1/alerts``)."""

    name: str = Field(pattern=_NAME_PATTERN)
    token: SecretValue
    areas: list[str] = Field(
        default_factory=list, description="division codes the neighbour wants (default: any)"
    )
    events: list[str] = Field(default_factory=list, description="CAP events (default: any)")
    scopes: list[Literal["Public", "Restricted", "Private"]] = Field(default_factory=_public_only)
    push_url: str | None = Field(
        None, pattern=r"^https?://[^\s/]+", description="the neighbour's POST /api/v1/alerts"
    )
    push_token: SecretValue | None = Field(None, description="our token at the neighbour's API")
    push_interval_seconds: float = Field(30.0, gt=0, description="between rounds of pushes")
    timeout_seconds: float = Field(10.0, gt=0, description="of one push")

    @model_validator(mode="after")
    def _push_needs_both(self) -> NeighbourConfig:
        if (self.push_url is None) != (self.push_token is None):
            raise ValueError("push_url and push_token go together")
        return self


class NodeReportConfig(StrictModel):
    """Where this node reports the delivery state of the alerts one API client sent it."""

    client: str = Field(min_length=1, description="the [[api.tokens]] name of the sending node")
    url: str = Field(pattern=r"^https?://", description="that node's base URL")
    token: SecretValue = Field(description="this node's bearer token at that node")


class NodeConfig(StrictModel):
    """This server's place between the city and its counties (``docs/federation.md``)."""

    role: Literal["city", "county", "both"] | None = Field(
        None, description="none: a stand-alone server whose officers may target any area"
    )
    division: str | None = Field(None, pattern=r"^[0-9]{6}([0-9]{6})?$")
    report_to: list[NodeReportConfig] = Field(default_factory=list)
    report_interval_seconds: float = Field(2.0, gt=0)

    @property
    def parent_clients(self) -> frozenset[str]:
        """The API clients that are nodes this one reports to."""
        return frozenset(r.client for r in self.report_to)

    @model_validator(mode="after")
    def _division_fits_role(self) -> NodeConfig:
        if self.role is None:
            return self
        if self.division is None:
            raise ValueError(f"a {self.role} node needs its division code")
        level = "county" if self.role == "county" else "city"
        found = _division_level(self.division)
        if found != level:
            raise ValueError(
                f"a {self.role} node's division must be a {level}, {self.division} is a {found}"
            )
        return self


def _division_level(code: str) -> str:
    try:
        return code_level(code)
    except ValueError as exc:
        return str(exc)


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
