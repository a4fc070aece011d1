"""The ``relay`` channel: a city node hands each alert to its county nodes as signed CAP 1.2.

A target is one county node (``[[channels.<name>.nodes]]``): the channel enrols one target per
node, in the node's county division, that any area inside that county selects
(``params.whole_division``). ``send`` serialises the alert as CAP 1.2 XML, signs it with the
server's key (``[cap] signing_key``, when configured) and posts it to the node's
``POST /api/v1/alerts`` with the node's bearer token. The document keeps the alert's sender,
identifier and sent time, so a repeat is the same alert to the county (answered 200, "already
accepted") and an Update or Cancel references what the county already holds. Optional mutual
TLS: ``client_cert``/``client_key`` and the ``ca`` that signed the node's certificate.

201 or 200 makes the delivery ``accepted``: the county plans and delivers on its own devices
and reports their state back (``POST /api/v1/alerts/{id}/reports``, :mod:`broadcaster.api.
reports`; the channel also polls every ``poll_seconds``). Once every one of them is final the
delivery ends as :func:`broadcaster.federation.reports.report_outcome` says: confirmed when the
county confirmed at least one, failed when it confirmed none (all failed or expired, or none
planned). Connection errors, timeouts, 408, 425, 429, 5xx and redirects (3xx: never followed,
so the signed alert goes to the configured address only and only its answer counts) are
retried until the alert expires, or with ``fallback = "direct"`` until the node has been
unreachable for ``fallback_after`` (then this node delivers there itself); the node shows as
unreachable in the health's ``devices`` meanwhile. Since when is kept in the channel's records
in the store, so a restart neither forgets it nor starts that count again. Any other answer
(the node refusing the alert or the token) fails the delivery for good. At most
:data:`MAX_ANSWER_BYTES` of any answer is read: a longer 200/201 is retried as an answer this
node cannot take, of a longer refusal only the start is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from broadcaster.cap import format_cap_time, to_xml
from broadcaster.channel import (
    AlertMessage,
    Channel,
    ChannelCapabilities,
    ChannelContext,
    ChannelHealth,
    Confirmation,
    OutgoingDelivery,
    SendOutcome,
    SendResult,
)
from broadcaster.config import ChannelConfig, SecretValue
from broadcaster.delivery import Target
from broadcaster.destinations import origin
from broadcaster.divisions import normalize_code
from broadcaster.errors import (
    ChannelError,
    DeviceTimeoutError,
    DeviceUnavailableError,
    PermanentError,
    RetryableError,
    TargetRejectedError,
)
from broadcaster.federation.reports import polled_summary, report_outcome
from broadcaster.intake import alert_id_for

_RETRY_STATUSES = frozenset({408, 425, 429})
MAX_ANSWER_BYTES = 65_536
"""The most of a county node's answer that is read (its JSON answers are far smaller)."""
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_DIVISION = r"^[0-9]{6}([0-9]{6})?$"
_UNREACHABLE = "unreachable:"
"""Prefix of the channel's records of nodes that cannot be reached: target id → since when."""


class RelayNodeConfig(BaseModel):
    """One county node: where its API is and how this node proves who it is there."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    division: str = Field(pattern=_DIVISION, description="the county's division code")
    url: str = Field(pattern=r"^https?://", description="the county node's base URL")
    token: SecretValue
    name: str | None = Field(None, description="default: the county's name in the registry")
    client_cert: Path | None = Field(None, description="PEM client certificate (mutual TLS)")
    client_key: Path | None = None
    ca: Path | None = Field(None, description="PEM CA certificates the node's one chains to")


class RelayChannelConfig(ChannelConfig):
    nodes: list[RelayNodeConfig] = Field(min_length=1)
    timeout_seconds: float = Field(10.0, gt=0)
    confirm_timeout_seconds: float | None = Field(3600.0, gt=0)
    poll_seconds: float = Field(
        30.0, gt=0, description="how often to ask a node for the state it has not reported"
    )
    fallback: Literal["none", "direct"] = Field(
        "none", description="direct: deliver on this node's own devices in an unreachable county"
    )
    fallback_after: str = Field("10m", pattern=r"^[0-9]+(\.[0-9]+)?[smh]$")

    @property
    def fallback_seconds(self) -> float:
        return float(self.fallback_after[:-1]) * _UNIT_SECONDS[self.fallback_after[-1]]


def _target_id(division: str) -> str:
    return f"node-{normalize_code(division)[:6]}"


def _tls_problems(node: RelayNodeConfig, key: str) -> list[str]:
    problems = []
    if (node.client_cert is None) != (node.client_key is None):
        problems.append(f"{key}: client_cert and client_key go together")
    for field in ("client_cert", "client_key", "ca"):
        path = getattr(node, field)
        if path is not None and not Path(path).is_file():
            problems.append(f"{key}.{field}: cannot read {path}")
    return problems


def _tls_context(node: RelayNodeConfig) -> ssl.SSLContext | None:
    if node.ca is None and node.client_cert is None:
        return None
    context = ssl.create_default_context(cafile=str(node.ca) if node.ca else None)
    if node.client_cert is not None and node.client_key is not None:
        context.load_cert_chain(str(node.client_cert), str(node.client_key))
    return context


class RelayChannel(Channel[RelayChannelConfig]):
    capabilities = ChannelCapabilities(
        confirms=True,
        enrols_targets=True,
        relays=True,
        description="signed CAP 1.2 to county nodes, confirmed by their reports",
    )
    target_unit: ClassVar[str] = "county nodes"
    config_model: ClassVar[type[ChannelConfig]] = RelayChannelConfig

    def __init__(self, name: str, config: RelayChannelConfig, context: ChannelContext) -> None:
        super().__init__(name, config, context)
        self._nodes = {_target_id(n.division): n for n in config.nodes}
        self._tls: dict[str, ssl.SSLContext | None] = {}
        self._unreachable: dict[str, tuple[float, str]] = {}
        self._awaiting: dict[int, tuple[str, str, float]] = {}
        """Accepted deliveries not confirmed yet: id → (target id, alert id, expires at)."""
        self._poll_task: asyncio.Task[None] | None = None

    @classmethod
    def preflight(cls, name: str, config: ChannelConfig, data_dir: Path) -> list[str]:
        assert isinstance(config, RelayChannelConfig)
        problems = []
        for i, node in enumerate(config.nodes):
            problems += _tls_problems(node, f"nodes[{i}]")
        return problems

    def _name_of(self, node: RelayNodeConfig) -> str:
        tree = self.context.divisions
        division = tree.get(normalize_code(node.division)) if tree is not None else None
        return node.name or (division.name if division else node.division)

    def _target(self, node: RelayNodeConfig) -> Target:
        code = normalize_code(node.division)
        tree = self.context.divisions
        division = tree.get(code) if tree is not None else None
        return Target(
            id=_target_id(code),
            channel=self.name,
            name=f"{self._name_of(node)} county node",
            address=node.url,
            division=code,
            lat=division.lat if division else None,
            lon=division.lon if division else None,
            params={"whole_division": True, "node": code[:6]},
        )

    async def start(self) -> None:
        try:
            self._tls = {key: _tls_context(node) for key, node in self._nodes.items()}
        except (OSError, ssl.SSLError) as exc:
            raise ChannelError(f"cannot load the TLS files of a county node: {exc}") from exc
        if self.context.targets is not None:
            for target in await self.context.targets.all():
                if target.id not in self._nodes:
                    await self.context.targets.unregister(target.id)
            for node in self._nodes.values():
                await self.context.targets.register(self._target(node))
        await self._recall_unreachable()
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._poll_task = asyncio.create_task(self._poller(), name=f"relay:{self.name}:poll")

    async def _recall_unreachable(self) -> None:
        """The nodes that could not be reached before this start, from the channel's records
        (those of nodes no longer configured are dropped)."""
        records = self.context.records
        if records is None:
            return
        for key, since in await records.items(_UNREACHABLE):
            target_id = key.removeprefix(_UNREACHABLE)
            if target_id not in self._nodes:
                await records.delete(key)
            elif isinstance(since, int | float):
                self._unreachable[target_id] = (float(since), "unreachable before this start")

    async def stop(self) -> None:
        if self._poll_task is not None:
            self._poll_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll_task
        await self._session.close()

    async def resume(self, deliveries: Sequence[OutgoingDelivery]) -> None:
        for delivery in deliveries:
            self._await(delivery)

    def _await(self, delivery: OutgoingDelivery) -> None:
        alert = delivery.message.alert
        # The county stores the alert under the id its CAP triple gives, as this node does.
        alert_id = alert_id_for(alert.sender, alert.identifier, format_cap_time(alert.sent))
        self._awaiting[delivery.id] = (delivery.target.id, alert_id, delivery.expires_at)

    async def _poller(self) -> None:
        """Ask each node for the state of what it accepted and has not reported as final: a
        report that cannot reach this node (its address unknown to the county, a firewall)
        still ends in a confirmation."""
        while True:
            await asyncio.sleep(self.config.poll_seconds)
            now = time.time()
            for delivery_id, (target_id, alert_id, expires_at) in list(self._awaiting.items()):
                if expires_at <= now or target_id not in self._nodes:
                    self._awaiting.pop(delivery_id, None)
                    continue
                with contextlib.suppress(ChannelError):
                    await self._poll(delivery_id, target_id, alert_id)

    async def _poll(self, delivery_id: int, target_id: str, alert_id: str) -> None:
        node = self._nodes[target_id]
        url = f"{node.url.rstrip('/')}/api/v1/alerts/{alert_id}/deliveries?limit=1"
        answer = await self._request("GET", url, None, self._headers(node), target_id)
        summary = polled_summary(answer.get("summary"))
        # Without counts it can read, the answer tells nothing of what the county did.
        if answer.get("complete") is not True or summary is None:
            return
        if self._awaiting.pop(delivery_id, None) is None:
            return
        outcome, detail = report_outcome(f"{self._name_of(node)} county node", summary, True)
        self.confirm(Confirmation(delivery_id, outcome, detail))

    def _headers(self, node: RelayNodeConfig) -> dict[str, str]:
        return {"Authorization": f"Bearer {node.token.reveal()}"}

    async def content(self, message: AlertMessage, target: Target, part: int) -> dict[str, Any]:
        alert = message.alert
        return {
            "node": target.name,
            "cap": {
                "sender": alert.sender,
                "identifier": alert.identifier,
                "sent": alert.sent.isoformat(),
                "msgType": str(alert.msg_type),
            },
            "signed": self.context.signer is not None,
        }

    def _node_for(self, target: Target) -> RelayNodeConfig:
        node = self._nodes.get(target.id)
        if node is None:
            raise TargetRejectedError(f"{target.id} is no longer a configured county node")
        return node

    async def send(self, delivery: OutgoingDelivery) -> SendResult:
        node = self._node_for(delivery.target)
        body = to_xml(delivery.message.alert, signer=self.context.signer)
        headers = self._headers(node) | {
            "Content-Type": "application/cap+xml",
            "Idempotency-Key": delivery.idempotency_key,
        }
        url = f"{node.url.rstrip('/')}/api/v1/alerts?allow_empty=1"
        try:
            answer = await self._request("POST", url, body, headers, delivery.target.id)
        except RetryableError as exc:
            since = await self._down(delivery.target.id, str(exc))
            if self._falls_back(since):
                await self._deliver_directly(delivery, node, since, exc)
            raise
        await self._up(delivery.target.id)
        self._await(delivery)
        again = "already accepted" if answer.get("created") is False else "accepted"
        content = await self.content(delivery.message, delivery.target, delivery.part)
        return SendResult(
            SendOutcome.ACCEPTED,
            provider_ref=str(answer.get("id", "")),
            detail=f"{self._name_of(node)} county node {again} it; waiting for its report",
            content=content,
        )

    async def _down(self, target_id: str, error: str) -> float:
        """Note that the node ``target_id`` could not be reached; since when it has been
        unreachable (its first failure in a row). That time is kept in the channel's records,
        in the store, so a restart of this node, or another node sharing the store, counts
        ``fallback_after`` from the same moment instead of starting again."""
        now = time.time()
        records = self.context.records
        if records is None:
            since = self._unreachable.get(target_id, (now, ""))[0]
        elif await records.add(_UNREACHABLE + target_id, now):
            since = now
        else:
            stored = await records.get(_UNREACHABLE + target_id)
            since = float(stored) if isinstance(stored, int | float) else now
        self._unreachable[target_id] = (since, error)
        return since

    async def _up(self, target_id: str) -> None:
        """The node ``target_id`` answered: it is reachable again."""
        self._unreachable.pop(target_id, None)
        if self.context.records is not None:
            await self.context.records.delete(_UNREACHABLE + target_id)

    def _falls_back(self, since: float) -> bool:
        return (
            self.config.fallback == "direct"
            and self.context.dispatch is not None
            and time.time() - since >= self.config.fallback_seconds
        )

    async def _deliver_directly(
        self, delivery: OutgoingDelivery, node: RelayNodeConfig, since: float, error: Exception
    ) -> None:
        """Hand the county's devices to this node's own channels and end the relay delivery,
        saying so; raises the PermanentError that ends it."""
        assert self.context.dispatch is not None
        minutes = (time.time() - since) / 60
        reason = f"{self._name_of(node)} county node unreachable for {minutes:.0f} min ({error})"
        planned = await self.context.dispatch.deliver_directly(delivery.id, reason)
        done = ", ".join(f"{channel} {n}" for channel, n in sorted(planned.items()))
        raise PermanentError(
            f"{reason}: this node delivers to the county's devices itself"
            + (f" ({done})" if done else " (it has no channel or target there)")
        ) from error

    async def _request(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], key: str
    ) -> dict[str, Any]:
        where = f"county node {origin(url)}"
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers=headers,
                ssl=self._tls.get(key) or True,
                allow_redirects=False,
            ) as response:
                status = response.status
                try:
                    raw = await response.content.readexactly(MAX_ANSWER_BYTES + 1)
                except asyncio.IncompleteReadError as short:
                    raw = short.partial  # the whole answer: it ended before the limit
        except TimeoutError as exc:
            raise DeviceTimeoutError(f"{where} unreachable: no answer in time") from exc
        except aiohttp.ClientError as exc:
            raise DeviceUnavailableError(f"{where} unreachable: {exc}") from exc
        if status in (200, 201):
            if len(raw) > MAX_ANSWER_BYTES:
                raise RetryableError(
                    f"{where} answered HTTP {status} with more than {MAX_ANSWER_BYTES} bytes"
                )
            try:
                answer = json.loads(raw) if raw else {}
            except ValueError:
                answer = {}
            return answer if isinstance(answer, dict) else {}
        if 300 <= status < 400:
            raise RetryableError(f"{where} answered HTTP {status}: redirects are not followed")
        if status in _RETRY_STATUSES or status >= 500:
            raise RetryableError(f"{where} answered HTTP {status}")
        text = raw[:1200].decode("utf-8", errors="replace")[:300]
        raise TargetRejectedError(f"{where} refused the alert: HTTP {status}: {text}")

    async def health(self) -> ChannelHealth:
        """The channel itself is fine while it runs; each county node's reachability shows
        in ``devices`` (one node down is that delivery's failure, not the channel's)."""
        devices: dict[str, Any] = {}
        for key, node in self._nodes.items():
            down = self._unreachable.get(key)
            devices[self._name_of(node)] = (
                {"online": False, "state": "unreachable", "since": down[0], "last_error": down[1]}
                if down
                else {"online": True, "state": "reachable"}
            )
        unreachable = sum(1 for d in devices.values() if d["state"] == "unreachable")
        detail = f"{len(devices)} county nodes, {unreachable} unreachable"
        return ChannelHealth(ok=True, detail=detail, devices=devices)
