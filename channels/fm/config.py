"""Settings of the ``fm`` channel: which encoder serves which transmitter, what the station
shows when no alert is on air, what an alert shows, how audio reaches the transmitter.

Example (``[channels.fm]`` in the TOML configuration)::

    [channels.fm]
    type = "fm"
    player = ["aplay", "-q", "-D", "plughw:1,0", "{file}"]
    station = { ps = "ULANQAB", rt = "Ulanqab Emergency Radio", pty = 3, tp = true }

    [channels.fm.encoders]
    tx-150921 = "socket://10.15.9.21:4001?site=12&encoder=3"
    tx-150922 = { url = "/dev/ttyUSB0?dialect=ascii", ps = "HUADE FM" }

A registry target of the channel names its transmitter in ``address``: either a key of
``encoders`` or an encoder URL itself (``socket://...`` or a device path). With
``simulate = true`` (demos) any other transmitter gets an in-process encoder simulator.
Every value is checked once, at load: PS and RT texts must fit the RDS character set,
encoder URLs must parse, the player command must contain ``{file}``.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from broadcaster.config import ChannelConfig
from drivers.rds import EncoderState, RdsEncoderConfig, RdsError
from drivers.rds.charset import PS_LENGTH, RT_MAX_LENGTH, is_rds_text

#: The longest Latin marker ("EXERCISE UPDATE: ") leaves this much room for a fallback RT.
FALLBACK_RT_MAX = RT_MAX_LENGTH - 20


def _rds_text(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        if len(value) > limit:
            raise ValueError(f"{value!r} has {len(value)} characters; at most {limit} fit")
        if not is_rds_text(value):
            bad = next(c for c in value if not is_rds_text(c))
            raise ValueError(f"{value!r}: character {bad!r} is outside the RDS character set")
        return value

    return AfterValidator(check)


PsText = Annotated[str, _rds_text(PS_LENGTH)]
RtText = Annotated[str, _rds_text(RT_MAX_LENGTH)]
FallbackRtText = Annotated[str, _rds_text(FALLBACK_RT_MAX)]


def _encoder_url(value: str) -> str:
    try:
        RdsEncoderConfig.from_url(value)
    except RdsError as error:
        raise ValueError(f"bad encoder URL {value!r}: {error}") from None
    return value


EncoderUrl = Annotated[str, AfterValidator(_encoder_url)]


class StationConfig(BaseModel):
    """What a station shows when no alert is on air; restored after every alert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ps: PsText | None = None
    rt: RtText | None = None
    pty: int | None = Field(None, ge=0, le=29, description="programme type outside an alarm")
    tp: bool | None = None
    pi: int | None = Field(None, ge=0, le=0xFFFF)

    def state(self) -> EncoderState:
        return EncoderState(pi=self.pi, ps=self.ps, rt=self.rt, pty=self.pty, tp=self.tp, ta=False)


class TransmitterConfig(StationConfig):
    """One encoder: its URL and, optionally, its own normal PS/RT/PTY/TP/PI."""

    url: EncoderUrl


class PsConfig(BaseModel):
    """The programme service name shown while an alert is on air, per alert status."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actual: PsText = "ALERT"
    exercise: PsText = "EXERCISE"
    test: PsText = "TEST"


class SameConfig(BaseModel):
    """An EAS SAME header before the spoken warning (47 CFR §11.31): originator, station
    identifier, and event codes per hazard (the hazards of the clip library)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    originator: str = Field("CIV", pattern=r"^(EAS|CIV|WXR|PEP)$")
    station: str = Field("ULANQAB ", pattern=r"^[\x20-\x2c\x2e-\x7e]{1,8}$")
    events: dict[str, Annotated[str, Field(pattern=r"^[A-Z]{3}$")]] = Field(default_factory=dict)


class FmChannelConfig(ChannelConfig):
    """``[channels.fm]``; see the module docstring."""

    encoders: dict[str, EncoderUrl | TransmitterConfig] = Field(default_factory=dict)
    station: StationConfig = Field(default_factory=StationConfig)
    ps: PsConfig = Field(default_factory=PsConfig)
    rt_fallback: dict[str, FallbackRtText] = Field(
        default_factory=dict,
        description="Latin RT for texts outside the RDS set, keyed 'hazard.level', 'hazard'"
        " or 'default' (hazards: blizzard, gale, flood, ...; levels: red, orange, ...)",
    )
    player: list[str] = Field(
        default_factory=lambda: ["aplay", "-q", "{file}"],
        min_length=1,
        description="command that plays one WAV file into the transmitter's audio input",
    )
    player_timeout_seconds: float = Field(
        30.0, gt=0, description="allowed beyond the audio's own duration"
    )
    same: SameConfig = Field(default_factory=SameConfig)
    reconnect_attempts: int = Field(3, ge=0, le=100)
    reconnect_delay_seconds: float = Field(0.5, ge=0, le=60)
    restore_retry_seconds: float = Field(
        5.0, gt=0, description="how often to retry restoring an encoder left in alert state"
    )
    busy_retry_seconds: float = Field(
        5.0, gt=0, description="longest wait before retrying an alert for a busy transmitter"
    )
    preempt: bool = Field(
        True, description="a higher-priority alert stops a lower one on the same transmitter"
    )

    simulate: bool = Field(
        False,
        description="serve transmitters missing from encoders with in-process RDS encoder"
        " simulators and, unless a player is set, write the audio to files (demo only)",
    )

    @model_validator(mode="after")
    def _player_has_file(self) -> Self:
        if not any("{file}" in part for part in self.player):
            raise ValueError("player: the command must contain {file}")
        return self

    def transmitter(self, key: str) -> TransmitterConfig | None:
        """The encoder entry for a target address: a key of ``encoders`` or a URL."""
        entry = self.encoders.get(key)
        if isinstance(entry, TransmitterConfig):
            merged = self.station.model_dump() | entry.model_dump(exclude_none=True)
            return TransmitterConfig.model_validate(merged)
        url = entry if entry is not None else key
        if not url.startswith(("socket://", "/")):
            return None
        return TransmitterConfig.model_validate(self.station.model_dump() | {"url": url})
