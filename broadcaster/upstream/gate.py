"""One upstream source's gate: trust, area, policy and deduplication of what it brings.

Every document a source brings, pushed or polled, passes the same gate:

1. Trust: with ``require_signature`` only CAP XML signed by one of the source's
   ``trusted_certificates`` passes (unsigned, tampered, malformed or foreign signatures are
   refused); without it the source's token (push) or configured URL (poll) is the trust, and
   intake's own signature policy (``[cap]``) still refuses a tampered signature.
2. Area: an alert is taken only if it touches our area (:mod:`broadcaster.upstream.rules`), or
   if it updates or cancels an alert stored here; one whose areas select no target on our
   channels is not ours either. Neither is an error: the source is told ``outside-area``.
3. Policy: ``auto`` delivers at once; ``review`` stores the alert awaiting an officer's
   approval (the two-person rule: the source is the first party, the approving officer the
   second). A Cancel whose every reference is an alert this source brought, from the same
   sender, is applied at once under either policy: it only stops what that sender started.
   An Update or Cancel of what another source or this node brought waits for an officer under
   either policy, unless the source's signatures are required and the key that signed the
   alert it references signed it too (a signature proves the key, not the sender). An alert
   in this node's own name (``[server] sender``) is never taken: ours coming back through a
   neighbour is a duplicate, any other is refused.
4. Deduplication and chains: intake keys alerts by (sender, identifier, sent), so the same alert
   from a second source, or again after a restart, is the one stored first; Updates and Cancels
   find what they reference whichever source brought it, and stop what is still queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from broadcaster.cap import Alert, MsgType, format_cap_time, parse_cap_time
from broadcaster.cap.jsonform import read_json
from broadcaster.cap.parse import parse_cap
from broadcaster.cap.problems import IntakePolicy, Problem
from broadcaster.cap.signature import verify_signature
from broadcaster.config import CapConfig
from broadcaster.errors import CapError, UnreachableAreaError
from broadcaster.federationconfig import UpstreamConfig
from broadcaster.intake import IntakeResult
from broadcaster.signatures import SignaturePolicy
from broadcaster.store.alerts import AlertTable
from broadcaster.store.db import Database
from broadcaster.upstream.rules import AreaFilter

Outcome = Literal["created", "pending", "duplicate", "outside-area", "refused"]
Submit = Callable[..., Awaitable[IntakeResult]]


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What the gate did with one document."""

    outcome: Outcome
    alert_id: str | None = None
    state: str = ""
    error: str = ""
    problems: Sequence[Problem] = ()

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"outcome": self.outcome, "id": self.alert_id, "state": self.state}
        if self.error:
            body["error"] = self.error
            body["problems"] = [p.as_json() for p in self.problems]
        return body


@dataclass(slots=True)
class SourceHealth:
    """A source's recent history, for ``/healthz``, ``/metrics`` and the console."""

    name: str
    mode: str
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    failures: int = 0
    """Failures since the last success (a poll, or a pushed document taken)."""
    next_poll_at: float | None = None
    polls: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failures == 0

    def lag(self, now: float) -> float | None:
        """Seconds since the last success; None before the first one."""
        return None if self.last_success is None else max(0.0, now - self.last_success)

    def succeeded(self, now: float) -> None:
        self.last_success, self.failures = now, 0

    def noted(self, now: float, error: str) -> None:
        """An error that says nothing of the source's reachability (a refused document)."""
        self.last_error, self.last_error_at = error, now

    def failed(self, now: float, error: str) -> None:
        self.noted(now, error)
        self.failures += 1

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "ok": self.ok,
            "last_success": self.last_success,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "failures": self.failures,
            "lag_seconds": self.lag(now),
            "next_poll_at": self.next_poll_at,
            "polls": self.polls,
            "documents": dict(self.counts),
        }


def _resolved(path: Path, base: Path | None) -> Path:
    return path if path.is_absolute() or base is None else (base / path).resolve()


class UpstreamGate:
    """The gate of one configured source (see the module's docstring)."""

    def __init__(
        self,
        config: UpstreamConfig,
        *,
        cap: CapConfig,
        area: AreaFilter,
        database: Database,
        submit: Submit,
        base_dir: Path | None,
        own_sender: str,
    ) -> None:
        self.config = config
        self.name = config.name
        self.origin = f"upstream:{config.name}"
        self.own_sender = own_sender
        self.area = area
        self.database = database
        self.alerts = AlertTable(database)
        self.submit = submit
        self.intake_policy: IntakePolicy = cap.intake
        self.trust: SignaturePolicy | None = None
        if config.require_signature:
            certificates = [_resolved(p, base_dir) for p in config.trusted_certificates]
            self.trust = SignaturePolicy(
                CapConfig(trusted_certificates=certificates, require_trusted_signature=True)
            )
        self.health = SourceHealth(config.name, config.mode)

    async def ingest(self, data: bytes | Mapping[str, Any], now: float) -> IngestOutcome:
        """Pass one document through the gate; never raises for what the document holds."""
        try:
            outcome = await self._ingest(data, now)
        except UnreachableAreaError:
            outcome = IngestOutcome("outside-area")
        except CapError as exc:
            outcome = IngestOutcome("refused", error=str(exc), problems=exc.problems)
        self.health.counts[outcome.outcome] = self.health.counts.get(outcome.outcome, 0) + 1
        if outcome.outcome == "refused":
            error = f"refused a document: {outcome.error}"
            if self.config.mode == "push":
                self.health.failed(now, error)
            else:
                self.health.noted(now, error)
        elif self.config.mode == "push":
            self.health.succeeded(now)
        return outcome

    async def _ingest(self, data: bytes | Mapping[str, Any], now: float) -> IngestOutcome:
        signer = None
        if self.trust is not None:
            if not isinstance(data, bytes):
                raise CapError(f"upstream {self.name} must send signed CAP XML")
            verdict = await asyncio.to_thread(self.trust.check, data, now)
            signer = verdict.report.fingerprint
        alert = await asyncio.to_thread(self._parse, data)
        if alert.sender == self.own_sender:
            return await self._own(alert)
        referenced = await self.database.run(self._referenced, alert)
        if not referenced and not self.area.touches(alert):
            return IngestOutcome("outside-area")
        # An Update or Cancel stops what it references. One that references what another
        # source (or this node) brought waits for an officer whatever the policy, so that a
        # source cannot stop another sender's warning by writing its name, unless the key
        # that signed the referenced alert signed it too; one that only cancels what this
        # source brought, in the same sender's name, is applied at once even under review.
        foreign = False
        for _, origin, raw in referenced:
            if origin != self.origin:
                foreign = foreign or not await asyncio.to_thread(self._signed_by, raw, signer, now)
        own_cancel = (
            alert.msg_type is MsgType.CANCEL
            and bool(alert.references)
            and len(referenced) == len(alert.references)
            and all(sender == alert.sender for sender, _, _ in referenced)
            and not foreign
        )
        review = foreign or (self.config.policy == "review" and not own_cancel)
        result = await self.submit(
            data,
            origin=self.origin,
            channels=self.config.channels,
            requested_by=f"upstream:{self.name}" if review else None,
            notes=[("upstream", self.name)],
        )
        if not result.created:
            return IngestOutcome("duplicate", result.alert_id, result.state)
        kind: Outcome = "pending" if result.state == "pending" else "created"
        return IngestOutcome(kind, result.alert_id, result.state)

    def _parse(self, data: bytes | Mapping[str, Any]) -> Alert:
        if isinstance(data, bytes):
            return parse_cap(data, policy=self.intake_policy).alert
        return read_json(data, policy=self.intake_policy)[0]

    async def _own(self, alert: Alert) -> IngestOutcome:
        """An alert in this node's own name: ours coming back through a neighbour (taken as
        the duplicate it is), or a source speaking for this node (refused)."""
        sent = format_cap_time(alert.sent)
        found = await self.database.run(self.alerts.find_id, alert.sender, alert.identifier, sent)
        if found is None:
            raise CapError(f"upstream {self.name} sent an alert in this node's own name")
        return IngestOutcome("duplicate", found)

    def _signed_by(self, raw: bytes, signer: str | None, now: float) -> bool:
        """Whether ``raw`` (a stored alert) carries a valid signature by the trusted
        certificate of fingerprint ``signer``."""
        if signer is None or self.trust is None:
            return False
        at = datetime.fromtimestamp(now, UTC)
        report = verify_signature(raw, trusted_certs=self.trust.trusted, at=at)
        return (
            report.status == "valid"
            and report.certificate == "trusted"
            and (report.fingerprint == signer)
        )

    def _referenced(self, alert: Alert) -> list[tuple[str, str, bytes]]:
        """(sender, origin, CAP XML) of each referenced alert that is stored here."""
        found = []
        for ref in alert.references:
            try:
                sent = format_cap_time(parse_cap_time(ref.sent))
            except ValueError:
                continue
            found += [
                (str(row["sender"]), str(row["origin"]), bytes(row["raw_xml"]))
                for row in self.database.query(
                    "SELECT sender, origin, raw_xml FROM alerts"
                    " WHERE sender = ? AND identifier = ? AND sent = ?",
                    (ref.sender, ref.identifier, sent),
                )
            ]
        return found
