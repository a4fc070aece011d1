"""The ``[scheduler]`` table: scheduled test broadcasts, link checks and officer notifications.

::

    [scheduler]
    timezone = "Asia/Shanghai"          # cron times are read in this zone
    grace_minutes = 60                  # a run missed while down still runs this long after

    [[scheduler.schedules]]
    name = "daily-link-test"
    kind = "silent"                     # silent | audible-test | exercise
    cron = "0 9 * * *"                  # minute hour day month weekday (0 or 7 is Sunday)

    [scheduler.notify]
    channel = "officers"                # a channel of [channels]
    officers = [{ name = "duty officer", address = "+8613800000000" }]

    [scheduler.linkcheck]
    interval_seconds = 300
    unhealthy_after = 3

Validated with the rest of the configuration: :func:`check_scheduler_table` returns one line
per problem, each naming its dotted key, including references to channels that do not exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator

from broadcaster.config import StrictModel, format_validation_error
from broadcaster.divisions import normalize_code
from broadcaster.errors import ConfigError
from broadcaster.scheduler.triggers import cron_trigger

if TYPE_CHECKING:
    from broadcaster.config import Config

SCHEDULE_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class ScheduleKind(StrEnum):
    SILENT = "silent"
    """Check every target without playing, showing or sending anything to residents."""
    AUDIBLE_TEST = "audible-test"
    """A CAP alert with status Test: spoken and written as a test."""
    EXERCISE = "exercise"
    """A CAP alert with status Exercise."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; raises ValueError if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


class ScheduleConfig(StrictModel):
    """One scheduled test: when, what kind, over which channels and area."""

    name: str = Field(pattern=SCHEDULE_NAME)
    kind: ScheduleKind
    cron: str = Field(description="minute hour day month weekday, in the scheduler's zone")
    timezone: str | None = Field(None, description="overrides [scheduler] timezone")
    enabled: bool = True
    channels: list[str] = Field(default_factory=list, description="empty: every channel")
    geocodes: list[str] = Field(
        default_factory=list,
        description="division codes; empty: every target, or the deployment's top divisions",
    )
    grace_minutes: float | None = Field(None, ge=0, description="overrides [scheduler]")
    expires_minutes: float = Field(30, gt=0, le=24 * 60)
    language: str = "zh-CN"
    headline: str | None = Field(None, min_length=1)
    description: str | None = Field(None, min_length=1)
    volume: int | None = Field(None, ge=0, le=100, description="for loudspeakers, percent")
    probe_timeout_seconds: float = Field(20, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            zone(value)
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        try:
            cron_trigger(value, UTC)
        except ValueError as exc:
            raise ValueError(f"not a valid cron expression: {exc}") from None
        return value

    @field_validator("geocodes")
    @classmethod
    def _division_codes(cls, value: list[str]) -> list[str]:
        return [normalize_code(code) for code in value]


class OfficerConfig(StrictModel):
    """Someone told when a test or a link fails, at an address of the notify channel."""

    name: str = Field(min_length=1)
    address: str = Field(min_length=1, description="phone number, URL, ... for the channel")
    languages: list[str] = Field(default_factory=lambda: ["zh-CN"])


class NotifyConfig(StrictModel):
    channel: str | None = Field(None, description="the channel that reaches the officers")
    officers: list[OfficerConfig] = Field(default_factory=list)
    language: Literal["zh", "en"] = "zh"
    on_recovery: bool = Field(True, description="also tell when a failed link recovers")


class LinkCheckChannelConfig(StrictModel):
    enabled: bool = True
    interval_seconds: float | None = Field(None, ge=1)
    probe_targets: bool = Field(
        True,
        description="probe each registry target; false: the channel's health only (for"
        " channels whose targets share one link, like phone numbers behind a modem pool)",
    )


class LinkCheckConfig(StrictModel):
    enabled: bool = True
    interval_seconds: float = Field(300, ge=1)
    unhealthy_after: int = Field(3, ge=1, description="failed probes in a row before a notice")
    probe_timeout_seconds: float = Field(20, gt=0)
    max_targets: int = Field(2000, ge=1, description="targets probed per channel and round")
    channels: dict[str, LinkCheckChannelConfig] = Field(default_factory=dict)


class SchedulerConfig(StrictModel):
    enabled: bool = True
    timezone: str = "UTC"
    grace_minutes: float = Field(60, ge=0)
    probe_concurrency: int = Field(32, ge=1, le=1000, description="per channel")
    schedules: list[ScheduleConfig] = Field(default_factory=list)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    linkcheck: LinkCheckConfig = Field(default_factory=LinkCheckConfig)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value

    def zone_of(self, schedule: ScheduleConfig) -> ZoneInfo:
        return zone(schedule.timezone or self.timezone)

    def grace_of(self, schedule: ScheduleConfig) -> float:
        """Seconds after its time that a missed run still runs."""
        minutes = schedule.grace_minutes
        return 60 * (self.grace_minutes if minutes is None else minutes)


def schedule_problems(
    entry: Any, channels: Mapping[str, Any], has_divisions: bool
) -> list[tuple[str, str]]:
    """Every problem of one schedule given as data, the model's and those of its references to
    channels and areas, as ``(key, message)`` with keys relative to the schedule ("" for the
    schedule itself)."""
    if not isinstance(entry, Mapping):
        return [("", "a schedule must be a table")]
    problems = []
    try:
        ScheduleConfig.model_validate(entry)
    except ValidationError as exc:
        for err in exc.errors():
            problems.append((".".join(str(part) for part in err["loc"]), err["msg"]))
    named = entry.get("channels", [])
    for n, name in enumerate(named if isinstance(named, list) else []):
        if isinstance(name, str) and name not in channels:
            problems.append((f"channels.{n}", f"no channel {name!r} in [channels]"))
    kind = entry.get("kind")
    broadcast = kind in (ScheduleKind.AUDIBLE_TEST, ScheduleKind.EXERCISE)
    if broadcast and not entry.get("geocodes") and not has_divisions:
        message = f"kind {kind} needs geocodes or a [registry] divisions file"
        problems.append(("geocodes", message))
    return problems


def problem_lines(problems: Sequence[tuple[str, str]], prefix: str = "") -> list[str]:
    """``key: message`` lines, keys under ``prefix``."""
    lines = []
    for key, message in problems:
        full = ".".join(part for part in (prefix, key) if part) or "(top level)"
        lines.append(f"{full}: {message}")
    return lines


def check_scheduler_table(data: Mapping[str, Any]) -> list[str]:
    """Every problem of the ``[scheduler]`` table of configuration ``data``, with its key.

    The table's own settings and each schedule are checked apart, so a mistake in one does
    not hide those of the others, nor the references to channels that do not exist.
    """
    raw = data.get("scheduler", {})
    if not isinstance(raw, Mapping):
        return ["scheduler: must be a table"]
    channels = data.get("channels", {})
    channels = channels if isinstance(channels, Mapping) else {}
    registry = data.get("registry", {})
    has_divisions = isinstance(registry, Mapping) and bool(registry.get("divisions"))
    problems: list[str] = []
    config = None
    try:
        config = SchedulerConfig.model_validate({**raw, "schedules": []})
    except ValidationError as exc:
        problems += format_validation_error(exc, "scheduler")
    entries = raw.get("schedules", [])
    if not isinstance(entries, list):
        return [*problems, "scheduler.schedules: must be a list of tables"]
    seen: set[str] = set()
    for n, entry in enumerate(entries):
        key = f"scheduler.schedules.{n}"
        problems += problem_lines(schedule_problems(entry, channels, has_divisions), key)
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if isinstance(name, str) and name in seen:
            problems.append(f"{key}.name: schedule {name!r} is defined twice")
        seen.add(str(name))
    if config is None:
        return problems
    notify = config.notify
    if notify.channel is not None and notify.channel not in channels:
        problems.append(f"scheduler.notify.channel: no channel {notify.channel!r} in [channels]")
    if notify.officers and notify.channel is None:
        problems.append("scheduler.notify.channel: officers are listed but no channel reaches them")
    for name in config.linkcheck.channels:
        if name not in channels:
            problems.append(f"scheduler.linkcheck.channels.{name}: no such channel in [channels]")
    return problems


def scheduler_config(config: Config) -> SchedulerConfig:
    """The typed ``[scheduler]`` table of a loaded configuration (validated at load)."""
    return SchedulerConfig.model_validate(config.scheduler)


class ScheduleError(ConfigError):
    """A schedule given at run time is invalid; ``problems`` names each key and problem."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class ScheduleNotFoundError(ScheduleError, LookupError):
    """No schedule has that name."""


class ScheduleConflictError(ScheduleError):
    """The change clashes with the schedule's state (name taken, defined in the configuration,
    a run in progress)."""
