"""A context, an alert message and deliveries for exercising a channel outside the server."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broadcaster.cap import (
    Alert,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    Scope,
    Severity,
    Status,
    Urgency,
)
from broadcaster.channel import AlertMessage, ChannelContext, OutgoingDelivery
from broadcaster.delivery import Target
from broadcaster.rendition import render


class FileRecords:
    """Channel records in one JSON file of the data directory: what the server keeps in its
    store, for a channel exercised without one (each call reads and writes the whole file)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _all(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        return dict(json.loads(self.path.read_text(encoding="utf-8")))

    def _save(self, records: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")

    async def get(self, key: str) -> Any | None:
        return self._all().get(key)

    async def put(self, key: str, value: Any) -> None:
        self._save(self._all() | {key: value})

    async def add(self, key: str, value: Any) -> bool:
        records = self._all()
        if key in records:
            return False
        self._save(records | {key: value})
        return True

    async def increment(self, key: str) -> int:
        records = self._all()
        value = int(records.get(key) or 0) + 1
        self._save(records | {key: value})
        return value

    async def delete(self, key: str) -> bool:
        records = self._all()
        found = records.pop(key, None) is not None
        self._save(records)
        return found

    async def items(self, prefix: str = "") -> list[tuple[str, Any]]:
        return sorted((k, v) for k, v in self._all().items() if k.startswith(prefix))

    async def write_many(self, changes: Mapping[str, Any | None]) -> None:
        records = self._all()
        for key, value in changes.items():
            if value is None:
                records.pop(key, None)
            else:
                records[key] = value
        self._save(records)


def channel_context(data_dir: Path) -> ChannelContext:
    """A context with a data directory and records kept in it (``channel-records.json``), and
    nothing else (no registry, divisions, audio or device leases)."""
    return ChannelContext(
        data_dir=data_dir,
        sender_name="测试",
        public_url="http://127.0.0.1:1",
        records=FileRecords(data_dir / "channel-records.json"),
    )


def contract_message(
    status: Status = Status.TEST, areas: Sequence[Area] | None = None
) -> AlertMessage:
    """A small, valid alert for contract checks (a Test alert unless told otherwise), of
    ``areas`` (by default one described area, with no geocode or shape)."""
    sent = datetime.now(UTC).replace(microsecond=0)
    alert = Alert(
        identifier=f"contract-{sent.timestamp():.0f}",
        sender="contract@example.cn",
        sent=sent,
        status=status,
        msg_type=MsgType.ALERT,
        scope=Scope.PUBLIC,
        infos=[
            Info(
                language="zh-CN",
                categories=[Category.MET],
                event="大风",
                urgency=Urgency.IMMEDIATE,
                severity=Severity.MODERATE,
                certainty=Certainty.LIKELY,
                expires=sent + timedelta(hours=1),
                headline="大风黄色预警",
                description="阵风8级。",
                instruction="请注意防范。",
                areas=list(areas) if areas is not None else [Area(area_desc="测试区")],
            )
        ],
    )
    return AlertMessage(
        id="a-contract",
        alert=alert,
        rendition=render(alert),
        expires_at=(sent + timedelta(hours=1)).timestamp(),
    )


def contract_delivery(
    target: Target, delivery_id: int = 1, message: AlertMessage | None = None
) -> OutgoingDelivery:
    """Delivery ``delivery_id`` of ``message`` (by default :func:`contract_message`) to
    ``target`` (first attempt)."""
    message = contract_message() if message is None else message
    return OutgoingDelivery(
        id=delivery_id,
        message=message,
        target=target,
        part=0,
        attempt=1,
        idempotency_key=f"{message.id}:{target.channel}:{target.id}:{delivery_id}",
        expires_at=message.expires_at,
    )
