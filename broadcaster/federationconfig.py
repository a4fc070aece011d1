"""The configuration of a node among others (``docs/federation.md``): its role and division
(``[node]``), the sources it takes alerts from (``[[upstream]]``) and the neighbours it shares
its own with (``[[neighbour]]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from broadcaster.configbase import SecretValue, StrictModel
from broadcaster.divisions import code_level

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
