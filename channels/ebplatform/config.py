"""Configuration of the ``ebplatform`` channel: our identity, the peers, the upper platform.

Values the sources leave uncertain (``docs/protocols/ebd.md``, ``channels/ebplatform/README.md``)
are settings with the best-supported default: the SM2 user id, whether the counter is signed,
the EBDS generation, the EBMID sequence width, the MsgType of tests and exercises, the event
code when the CAP alert carries none, whether state is polled as well as pushed.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from broadcaster.config import ChannelConfig
from broadcaster.divisions import normalize_code

EBRID_PATTERN = r"^[0-9]{23}$"
CERT_ID_PATTERN = r"^[0-9A-Fa-f]{12}$"


class EbPeer(BaseModel):
    """A lower platform (a county's) we send EBMs to, and the divisions it covers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    ebrid: str = Field(pattern=EBRID_PATTERN)
    url: str = Field(pattern=r"^https?://")
    areas: list[str] = Field(default_factory=list)
    cert_id: str | None = Field(None, pattern=CERT_ID_PATTERN)
    """The certificate of the trust list its packages must be signed with."""

    @field_validator("areas")
    @classmethod
    def _areas(cls, value: list[str]) -> list[str]:
        for area in value:
            normalize_code(area)  # a ValueError naming what is wrong with it
        return value


class EbUpper(BaseModel):
    """The upper platform whose EBMs we take in and report broadcast state back to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ebrid: str = Field(pattern=EBRID_PATTERN)
    cert_id: str | None = Field(None, pattern=CERT_ID_PATTERN)
    """The certificate of the trust list its packages must be signed with."""
    url: str | None = Field(None, pattern=r"^https?://")
    """Where state reports and heartbeats go; unset, none are pushed (the ``SRC/URL`` of its
    packages is never used)."""
    policy: Literal["deliver", "hold"] = "hold"
    channels: list[str] = Field(default_factory=list)
    report_seconds: float = Field(5.0, gt=0)
    heartbeat_seconds: float = Field(60.0, ge=0)


class EbPlatformChannelConfig(ChannelConfig):
    local_ebrid: str = Field(pattern=EBRID_PATTERN)
    sender_name: str | None = None
    local_url: str | None = Field(None, pattern=r"^https?://")
    signing_key_file: Path
    cert_id: str = Field(pattern=CERT_ID_PATTERN)
    trust: list[Path] = Field(min_length=1)
    user_id: str = Field("1234567812345678", min_length=1, max_length=8191)
    counter_signed: bool = False
    signature_form: Literal["2018", "2016"] = "2018"
    verify_heartbeat: bool = False
    peers: list[EbPeer] = Field(default_factory=list)
    upper: EbUpper | None = None
    allow_from: list[str] = Field(default_factory=list)
    state_poll_seconds: float = Field(0.0, ge=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    timeout_seconds: float = Field(60.0, gt=0)
    ebmid_width: int = Field(4, ge=1, le=4)
    default_event_type: str = Field("10000", pattern=r"^(1[1-4][A-Z]\d{2}|1\d000|20000|00000)$")
    exercise_msg_type: Literal[3, 4, 5] = 3
    test_msg_type: Literal[3, 4, 5] = 3
    audio: bool = False

    @field_validator("allow_from")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)
        return value

    @field_validator("peers")
    @classmethod
    def _unique(cls, value: list[EbPeer]) -> list[EbPeer]:
        names = [peer.name for peer in value]
        if len(set(names)) != len(names):
            raise ValueError("peer names must be unique")
        return value

    def senders(self) -> list[EbPeer | EbUpper]:
        """Every platform that may send us packages: the peers, then the upper platform."""
        return [*self.peers, *([self.upper] if self.upper else [])]
