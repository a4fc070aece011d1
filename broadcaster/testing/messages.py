"""A context, an alert message and deliveries for exercising a channel outside the server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

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


def channel_context(data_dir: Path) -> ChannelContext:
    """A context with a data directory and nothing else (no registry, divisions or audio)."""
    return ChannelContext(data_dir=data_dir, sender_name="测试", public_url="http://127.0.0.1:1")


def contract_message(status: Status = Status.TEST) -> AlertMessage:
    """A small, valid alert for contract checks (a Test alert unless told otherwise)."""
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
                areas=[Area(area_desc="测试区")],
            )
        ],
    )
    return AlertMessage(
        id="a-contract",
        alert=alert,
        rendition=render(alert),
        expires_at=(sent + timedelta(hours=1)).timestamp(),
    )


def contract_delivery(target: Target, delivery_id: int = 1) -> OutgoingDelivery:
    """Delivery ``delivery_id`` of :func:`contract_message` to ``target`` (first attempt)."""
    message = contract_message()
    return OutgoingDelivery(
        id=delivery_id,
        message=message,
        target=target,
        part=0,
        attempt=1,
        idempotency_key=f"{message.id}:{target.channel}:{target.id}:{delivery_id}",
        expires_at=message.expires_at,
    )
