"""Intake: a CAP document in, an alert and all its planned deliveries on disk, or a clear no.

1. Parse and validate under the intake policy (``[cap] intake``, per API token too): ``strict``
   refuses every CAP 1.2 error, ``repair`` accepts a document whose only errors are repairable
   and stores the repaired model (the raw XML stays verbatim), listing each repair in the answer
   and the alert's event log. Warnings are kept; a refused document stores nothing.
2. Idempotency: the same (sender, identifier, sent) returns the alert stored before.
3. Decide what the alert is for: Actual, Exercise and Test alerts are broadcast (the latter two
   marked on every channel); System, Draft, Ack and Error messages are stored but held.
4. Select: targets inside the alert's area per channel (a Cancel goes to the targets the
   referenced alerts reached). An Alert or Update whose areas select no target on any channel
   reaches no one and is refused (:class:`UnreachableAreaError`, nothing stored) unless the
   sender allows it; this dry run happens at submission, also for alerts that wait for approval.
   So are an Alert or Update that expired before it came, and a Cancel of no stored alert.
5. Plan each channel's deliveries and store alert, references and deliveries in one transaction;
   an Update supersedes and a Cancel cancels what is still queued for the alerts it references,
   of its own status only (a Test message never lifts an Actual warning; a System one, never
   broadcast, may withdraw any; a Draft changes nothing). Another document under a stored
   alert's sender, identifier and sent is refused.

Parsing, rendering and the geometry of planning run in worker threads: an alert of thousands of
areas must not hold up the event loop, which answers other requests and drives every channel.

``preview`` runs the parse and the selection and asks each channel what it would send; nothing
is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from broadcaster.cap import (
    Alert,
    MsgType,
    Problem,
    Severity,
    Status,
    Urgency,
    format_cap_time,
    parse_cap_time,
)
from broadcaster.cap.jsonform import read_json
from broadcaster.cap.parse import ParsedCap, parse_cap
from broadcaster.cap.problems import IntakePolicy
from broadcaster.cap.serialize import from_json, to_json, to_xml
from broadcaster.cap.signature import AlertSigner
from broadcaster.channel import AlertMessage, Channel, ChannelPreview
from broadcaster.config import CapConfig, DispatcherConfig
from broadcaster.delivery import Target
from broadcaster.errors import ApprovalError, CapError, ChannelError, UnreachableAreaError
from broadcaster.faults import ChannelFaults, plan_deliveries
from broadcaster.federation.fallback import within, without_relayed
from broadcaster.planner import (
    alert_areas,
    division_code_problems,
    polygon_problems,
    select_targets,
    unreached_problems,
)
from broadcaster.rendition import render
from broadcaster.signatures import SignaturePolicy, SignatureVerdict
from broadcaster.store.alerts import (
    REACHES_NO_ONE,
    AlertRecord,
    AlertTable,
    InFlight,
    NewDelivery,
    ReferenceLink,
)
from broadcaster.store.db import Database
from broadcaster.store.targets import TargetTable

log = logging.getLogger(__name__)

_SEVERITY_RANK = {
    Severity.EXTREME: 0,
    Severity.SEVERE: 1,
    Severity.MODERATE: 2,
    Severity.MINOR: 3,
    Severity.UNKNOWN: 4,
}
_URGENCY_RANK = {
    Urgency.IMMEDIATE: 0,
    Urgency.EXPECTED: 1,
    Urgency.FUTURE: 2,
    Urgency.PAST: 3,
    Urgency.UNKNOWN: 4,
}
_BROADCAST_STATUSES = {Status.ACTUAL, Status.EXERCISE, Status.TEST}
_BROADCAST_TYPES = {MsgType.ALERT, MsgType.UPDATE, MsgType.CANCEL}
_SUPERSEDES = {MsgType.CANCEL: "cancelled", MsgType.UPDATE: "superseded"}


def _problem(path: str, message: str) -> Problem:
    """Why a valid alert would reach no one (:class:`UnreachableAreaError`)."""
    return Problem(path, "reaches-no-one", message)


@dataclass(frozen=True, slots=True)
class IntakeResult:
    alert_id: str
    created: bool
    state: str
    warnings: list[Problem] = field(default_factory=list)
    repairs: list[Problem] = field(default_factory=list)
    planned: dict[str, int] = field(default_factory=dict)
    stopped_alerts: list[str] = field(default_factory=list)
    in_flight: list[InFlight] = field(default_factory=list)


def broadcasts(status: Status, msg_type: MsgType) -> bool:
    """Whether alerts of this status and type go out on the channels (others are held)."""
    return status in _BROADCAST_STATUSES and msg_type in _BROADCAST_TYPES


def alert_id_for(sender: str, identifier: str, sent: str) -> str:
    """The stable store id of an alert: the same triple always gives the same id."""
    digest = hashlib.sha256(f"{sender}\n{identifier}\n{sent}".encode()).hexdigest()
    return f"a{digest[:19]}"


def priority_of(alert: Alert) -> int:
    """Lower is more urgent: severity first, then urgency; tests and exercises after real ones."""
    severity = min((_SEVERITY_RANK[i.severity] for i in alert.infos), default=4)
    urgency = min((_URGENCY_RANK[i.urgency] for i in alert.infos), default=4)
    base = severity * 10 + urgency
    return base if alert.status is Status.ACTUAL else 100 + base


class Intake:
    """Accepts CAP documents into the store (used by the API, the console and the scheduler)."""

    def __init__(
        self,
        database: Database,
        channels: Mapping[str, Channel],
        config: DispatcherConfig,
        *,
        sender_name: str = "",
        clock: Callable[[], float] = time.time,
        signatures: SignaturePolicy | None = None,
        faults: ChannelFaults | None = None,
    ) -> None:
        self.database = database
        self.faults = faults or ChannelFaults(clock)
        self.alerts = AlertTable(database)
        self.targets = TargetTable(database)
        self.channels = dict(channels)
        self.config = config
        self.sender_name = sender_name
        self.clock = clock
        self.signatures = signatures or SignaturePolicy(CapConfig())

    async def submit(
        self,
        data: bytes | Mapping[str, Any] | Alert,
        *,
        origin: str,
        channels: Sequence[str] | None = None,
        requested_by: str | None = None,
        policy: IntakePolicy | None = None,
        allow_empty: bool = False,
        notes: Sequence[tuple[str, str]] = (),
        area_check: Callable[[Alert], None] | None = None,
    ) -> IntakeResult:
        """Validate, plan and store one alert; raises CapError (nothing stored) if invalid.

        ``policy`` overrides ``[cap] intake``. With ``requested_by``, an alert that would be
        broadcast, or that cancels or updates another, is stored awaiting a second officer's
        approval (:meth:`approve`); nothing is planned, cancelled or superseded until then, but
        its targets are selected now. An alert that would reach no one raises
        :class:`UnreachableAreaError` unless ``allow_empty``; ``area_check`` may refuse the
        valid alert by raising CapError (an area outside the node's division).
        """
        chosen = policy or self.signatures.config.intake
        parsed, verdict = await asyncio.to_thread(self._parse_and_verify, data, chosen)
        alert = parsed.alert
        if area_check is not None:
            await asyncio.to_thread(area_check, alert)
        wanted = self._wanted(channels)
        sent = format_cap_time(alert.sent)
        alert_id = alert_id_for(alert.sender, alert.identifier, sent)
        existing = await self.database.run(
            self.alerts.find_id, alert.sender, alert.identifier, sent
        )
        if existing is not None:
            return await self._existing(existing, parsed)

        now = self.clock()
        references = await self.database.run(self._resolve_references, alert)
        # A Draft changes nothing; a System message (never broadcast) may withdraw any alert
        # silently; an Actual, Test or Exercise one only alerts of its own status.
        supersede = _SUPERSEDES.get(alert.msg_type) if alert.status is not Status.DRAFT else None
        if supersede is not None and alert.status is not Status.SYSTEM:
            await self.database.run(self._check_statuses, alert, references)
        record = await asyncio.to_thread(self._record, alert_id, parsed, now, wanted, origin)
        warnings = [
            *parsed.problems,
            *verdict.problems,
            *division_code_problems(alert),
            *await asyncio.to_thread(polygon_problems, alert),
        ]
        record_notes = [*notes, *(("repair", str(problem)) for problem in parsed.repairs)]
        if verdict.report.status != "unsigned":
            record_notes.append(("signature", verdict.summary))
        candidates: dict[str, list[Target]] = {}
        unreached = False
        if record.state == "active":
            candidates = await self.targets_of(alert, wanted, references)
            unreached = alert.msg_type is not MsgType.CANCEL and not any(candidates.values())
        if unreached:
            problems = unreached_problems(alert, wanted)
        elif not broadcasts(alert.status, alert.msg_type):
            problems = []
        elif record.state == "expired" and alert.msg_type is not MsgType.CANCEL:
            problems = [_problem("/alert/info[1]/expires", "the alert expired before it came")]
        elif alert.msg_type is MsgType.CANCEL and not any(r.alert_id for r in references):
            problems = [_problem("/alert/references", "the Cancel names no alert stored here")]
        else:
            problems = []
        if problems:
            if not allow_empty:
                raise UnreachableAreaError(
                    f"the alert would reach no one: {problems[0].message}", problems
                )
            warnings += [replace(p, severity="warning") for p in problems]
            record_notes.append(("reaches-no-one", "; ".join(p.message for p in problems)))
        # Whatever would broadcast, or cancel or supersede another alert, waits for approval.
        pending = requested_by is not None and (record.state == "active" or supersede is not None)
        if pending and record.state == "active":
            record = replace(record, state="held")
        deliveries: list[NewDelivery] = []
        if record.state == "active":
            message = await asyncio.to_thread(self._message, record, alert)
            deliveries = await self._plan(message, candidates)
        created, in_flight = await self.database.run(
            self.alerts.insert,
            record,
            references,
            deliveries,
            supersede=supersede,
            now=now,
            requested_by=requested_by if pending else None,
            notes=record_notes,
        )
        if not created:
            return await self._existing(alert_id, parsed)
        planned: dict[str, int] = {}
        for d in deliveries:
            planned[d.channel] = planned.get(d.channel, 0) + 1
        stopped = (
            [r.alert_id for r in references if r.alert_id] if supersede and not pending else []
        )
        state = "pending" if pending else record.state
        return IntakeResult(
            alert_id=alert_id,
            created=True,
            state=REACHES_NO_ONE if unreached and state == "active" else state,
            warnings=warnings,
            repairs=parsed.repairs,
            planned=planned,
            stopped_alerts=stopped,
            in_flight=in_flight,
        )

    def _wanted(self, channels: Sequence[str] | None) -> list[str]:
        """The channels asked for (all by default); CapError naming any unknown one."""
        wanted = list(channels) if channels is not None else list(self.channels)
        unknown = [c for c in wanted if c not in self.channels]
        if unknown:
            raise CapError(f"unknown or unavailable channel(s): {', '.join(unknown)}")
        return wanted

    def _parse_and_verify(
        self, data: bytes | Mapping[str, Any] | Alert, policy: IntakePolicy
    ) -> tuple[ParsedCap, SignatureVerdict]:
        parsed = _parse_any(data, self.signatures.signer, policy)
        return parsed, self.signatures.check(parsed.raw, self.clock())

    def _message(self, record: AlertRecord, alert: Alert) -> AlertMessage:
        return AlertMessage(
            id=record.id,
            alert=alert,
            rendition=render(alert, sender_name=self.sender_name),
            expires_at=record.expires_at,
        )

    async def approve(
        self, alert_id: str, *, by: str, reason: str = "", allow_self: bool = False
    ) -> IntakeResult:
        """Approve a pending alert: plan its deliveries and make it active.

        Raises ApprovalError if it is not pending, has expired, or ``by`` is the officer who
        asked for it (unless ``allow_self``, which needs a reason).
        """
        approval = await self.database.run(self.alerts.approval, alert_id)
        if approval is None or approval["state"] != "pending":
            raise ApprovalError(f"alert {alert_id} is not awaiting approval")
        if approval["requested_by"] == by:
            if not allow_self:
                raise ApprovalError("a second officer must approve this alert")
            if not reason.strip():
                raise ApprovalError("approving one's own alert needs a recorded reason")
        record = await self.database.run(self.alerts.record, alert_id)
        now = self.clock()
        if record is None:
            raise ApprovalError(f"no alert {alert_id}")
        if record.state in ("cancelled", "superseded"):
            raise ApprovalError(f"alert {alert_id} was {record.state}; it can no longer be sent")
        if record.expires_at <= now:
            raise ApprovalError(f"alert {alert_id} has expired; it can no longer be sent")
        alert = await asyncio.to_thread(from_json, record.document)
        broadcast = broadcasts(alert.status, alert.msg_type)
        record = replace(
            record,
            effective_at=max(record.effective_at, now),
            state="active" if broadcast else "held",
        )
        references = await self.database.run(self.alerts.references_of, alert_id)
        deliveries: list[NewDelivery] = []
        if broadcast:
            candidates = await self.targets_of(alert, list(record.channels), references)
            message = await asyncio.to_thread(self._message, record, alert)
            deliveries = await self._plan(message, candidates)
        supersede = _SUPERSEDES.get(alert.msg_type)
        in_flight = await self.database.run(
            self.alerts.approve,
            record,
            references,
            deliveries,
            supersede=supersede,
            by=by,
            reason=reason,
            now=now,
        )
        if in_flight is None:
            raise ApprovalError(f"alert {alert_id} was decided meanwhile")
        planned: dict[str, int] = {}
        for d in deliveries:
            planned[d.channel] = planned.get(d.channel, 0) + 1
        return IntakeResult(
            alert_id=alert_id,
            created=False,
            state=record.state,
            planned=planned,
            stopped_alerts=[r.alert_id for r in references if r.alert_id] if supersede else [],
            in_flight=in_flight,
        )

    async def reject(self, alert_id: str, *, by: str, reason: str) -> None:
        """Reject a pending alert; it is never sent. Raises ApprovalError if not pending."""
        if not reason.strip():
            raise ApprovalError("a rejection needs a reason")
        if not await self.database.run(
            self.alerts.reject, alert_id, by=by, reason=reason, now=self.clock()
        ):
            raise ApprovalError(f"alert {alert_id} is not awaiting approval")

    async def _existing(self, alert_id: str, parsed: ParsedCap) -> IntakeResult:
        """The alert stored under the same sender, identifier and sent: this one again, or a
        different document under its name, refused (its content would be dropped)."""
        stored = await self.database.run(self.alerts.document, alert_id)
        if stored is not None and stored != to_json(parsed.alert):
            alert = parsed.alert
            raise CapError(
                f"another alert is stored as {alert.sender},{alert.identifier},"
                f"{format_cap_time(alert.sent)}: a new or changed alert needs an identifier of"
                " its own (an Update references the one it changes)"
            )
        row = await self.database.run(self.alerts.get, alert_id)
        state = str(row["shown_state"]) if row else "unknown"
        return IntakeResult(
            alert_id=alert_id,
            created=False,
            state=state,
            warnings=parsed.problems,
            repairs=parsed.repairs,
        )

    def _resolve_references(self, alert: Alert) -> list[ReferenceLink]:
        links = []
        for ref in alert.references:
            try:
                found = self.alerts.find_id(
                    ref.sender, ref.identifier, format_cap_time(parse_cap_time(ref.sent))
                )
            except ValueError:
                found = None
            links.append(ReferenceLink(ref.sender, ref.identifier, ref.sent, found))
        return links

    def _check_statuses(self, alert: Alert, references: Sequence[ReferenceLink]) -> None:
        """Refuse a Cancel or Update of a stored alert of another status: a Test message must
        not lift or replace a real warning, nor an Actual one a test."""
        for link in references:
            found = self.alerts.status(link.alert_id) if link.alert_id is not None else None
            if found is not None and found != alert.status.value:
                verb = "cancel" if alert.msg_type is MsgType.CANCEL else "update"
                raise CapError(
                    f"a message of status {alert.status.value} cannot {verb} the alert"
                    f" {link.sender},{link.identifier},{link.sent} of status {found}"
                )

    def _record(
        self, alert_id: str, parsed: ParsedCap, now: float, channels: list[str], origin: str
    ) -> AlertRecord:
        alert = parsed.alert
        effective = min(
            (i.effective.timestamp() for i in alert.infos if i.effective is not None),
            default=now,
        )
        expires_dt = alert.expires_at()
        expires = (
            expires_dt.timestamp()
            if expires_dt is not None
            else max(now, alert.sent.timestamp()) + self.config.default_expiry_minutes * 60
        )
        if expires <= now:
            state = "expired"
        elif broadcasts(alert.status, alert.msg_type):
            state = "active"
        else:
            state = "held"
        first = alert.infos[0] if alert.infos else None
        return AlertRecord(
            id=alert_id,
            sender=alert.sender,
            identifier=alert.identifier,
            sent=format_cap_time(alert.sent),
            status=str(alert.status),
            msg_type=str(alert.msg_type),
            scope=str(alert.scope),
            event=first.event if first else None,
            headline=first.headline if first else alert.note,
            severity=str(first.severity) if first else None,
            urgency=str(first.urgency) if first else None,
            effective_at=max(effective, now) if state == "active" else effective,
            expires_at=expires,
            state=state,
            priority=priority_of(alert),
            channels=tuple(channels),
            origin=origin,
            cap_version=parsed.version,
            raw_xml=parsed.raw,
            document=to_json(alert),
            received_at=now,
        )

    async def targets_of(
        self,
        alert: Alert,
        channels: Sequence[str],
        references: list[ReferenceLink] | None = None,
    ) -> dict[str, list[Target]]:
        """The targets each channel is given to plan ``alert`` on, as sending, previews and
        the approver's board see them: those its area selects, or for a Cancel those the
        alerts it lifts reached (``references``: resolved when None). A county the alert is
        relayed to delivers on its own devices, so this node's targets there are left out,
        except for a Cancel: it goes to whatever warned, this node's own there after a
        fallback included."""
        if references is None:
            references = await self.database.run(self._resolve_references, alert)
        candidates = await self._candidates(alert, list(channels), references)
        if alert.msg_type is MsgType.CANCEL:
            return candidates
        return without_relayed(self.channels, candidates)

    async def _candidates(
        self, alert: Alert, channels: list[str], references: list[ReferenceLink]
    ) -> dict[str, list[Target]]:
        """Each channel's targets for the alert: those its area selects, or for a Cancel
        those the alerts it lifts reached."""
        if alert.msg_type is MsgType.CANCEL:
            ref_ids = [r.alert_id for r in references if r.alert_id]
            reached = await self.database.run(self.alerts.reached_targets, ref_ids)
            return {name: list(reached.get(name, [])) for name in channels}
        areas = alert_areas(alert)
        candidates = {}
        for name in channels:
            registry = await self.database.run(self.targets.for_channel, name)
            candidates[name] = list(await asyncio.to_thread(select_targets, areas, registry))
        return candidates

    async def preview(
        self,
        data: bytes | Mapping[str, Any] | Alert,
        *,
        channels: Sequence[str] | None = None,
        policy: IntakePolicy | None = None,
    ) -> dict[str, ChannelPreview]:
        """What each channel would send for the alert, and to how many of its receivers,
        from the same code as sending (:meth:`Channel.preview`); nothing is stored. Raises
        CapError when the alert is invalid or a channel is unknown."""
        chosen = policy or self.signatures.config.intake
        parsed, _verdict = await asyncio.to_thread(self._parse_and_verify, data, chosen)
        alert = parsed.alert
        wanted = self._wanted(channels)
        alert_id = alert_id_for(alert.sender, alert.identifier, format_cap_time(alert.sent))
        record = await asyncio.to_thread(
            self._record, alert_id, parsed, self.clock(), wanted, "preview"
        )
        message = await asyncio.to_thread(self._message, record, alert)
        references = await self.database.run(self._resolve_references, alert)
        candidates = await self.targets_of(alert, wanted, references)
        previews = {}
        for name in wanted:
            try:
                shown = await self.channels[name].preview(message, candidates[name])
                if not isinstance(shown, ChannelPreview):
                    raise TypeError(
                        f"preview returned {type(shown).__name__}, not a ChannelPreview"
                    )
                previews[name] = shown
            except Exception as exc:
                error = (
                    str(exc)
                    if isinstance(exc, ChannelError)
                    else self.faults.record(name, "preview", exc)
                )
                previews[name] = ChannelPreview(
                    title="", notes=(f"this channel could not make a preview: {error}",)
                )
        return previews

    async def plan_direct(self, alert_id: str, division: str) -> dict[str, int]:
        """Plan a stored active alert on this node's own channels for their targets inside
        ``division`` (a county node that cannot be reached) and add them to its outbox; how
        many were added, by channel."""
        record = await self.database.run(self.alerts.record, alert_id)
        if record is None or record.state != "active":
            return {}
        alert = from_json(record.document)
        own = [
            name
            for name in record.channels
            if name in self.channels and not self.channels[name].capabilities.relays
        ]
        references = await self.database.run(self._resolve_references, alert)
        candidates = within(await self._candidates(alert, own, references), division)
        message = await asyncio.to_thread(self._message, record, alert)
        deliveries = await self._plan(message, candidates)
        added = await self.database.run(
            self.alerts.add_deliveries, record, deliveries, self.clock()
        )
        planned: dict[str, int] = {}
        for d in added:
            planned[d.channel] = planned.get(d.channel, 0) + 1
        return planned

    async def _plan(
        self, message: AlertMessage, candidates: Mapping[str, list[Target]]
    ) -> list[NewDelivery]:
        """The deliveries of ``message`` to ``candidates`` (from :meth:`targets_of`)."""
        deliveries: list[NewDelivery] = []
        for name in candidates:
            if not candidates[name]:
                continue
            channel = self.channels[name]
            for planned in await plan_deliveries(
                name, channel, message, candidates[name], self.faults
            ):
                deliveries.append(
                    NewDelivery(
                        channel=name,
                        target=planned.target,
                        part=planned.part,
                        idempotency_key=_idempotency_key(
                            message.id, name, planned.target, planned.part
                        ),
                    )
                )
        return deliveries


def _idempotency_key(alert_id: str, channel: str, target: Target, part: int) -> str:
    suffix = f"/{part}" if part else ""
    return f"{alert_id}:{channel}:{target.id}{suffix}"


def _parse_any(
    data: bytes | Mapping[str, Any] | Alert, signer: AlertSigner | None, policy: IntakePolicy
) -> ParsedCap:
    """Parse XML bytes, the JSON form or a model built in code, into a validated ParsedCap.

    Alerts built in code are this server's own and are signed when a signer is configured.
    """
    if isinstance(data, bytes | str):
        return parse_cap(data, policy=policy)
    if isinstance(data, Mapping):
        alert, warnings, repairs = read_json(data, policy=policy)
        parsed = parse_cap(to_xml(alert))
        return replace(parsed, problems=warnings, repairs=repairs)
    return parse_cap(to_xml(data, signer=signer))
