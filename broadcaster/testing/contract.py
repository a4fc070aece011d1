"""The contract every channel must pass, as a pytest class an integrator subclasses.

Usage, in the integrator's own tests::

    from broadcaster.testing.contract import ChannelContract

    class TestMyChannel(ChannelContract):
        @pytest.fixture
        def channel(self, tmp_path):            # a channel instance, not started
            return MyChannel("mine", MyChannel.config_model(type="mine", ...), context(tmp_path))

        @pytest.fixture
        def reachable_target(self):             # a target the channel can deliver to
            return Target(id="t1", channel="mine", name="test", address="...")

        @pytest.fixture
        async def failing(self, tmp_path):      # a started channel and a target that must fail
            channel = MyChannel(...)            # e.g. pointed at a device that is not there
            await channel.start()
            yield channel, Target(id="t2", channel="mine", name="gone", address="...")
            await channel.stop()

The suite checks what the core relies on: metadata types, start/stop, ``plan`` keeping to its
candidates, ``send`` answering with a :class:`SendResult` or an exception of the documented tree
(never a bool, never a foreign exception), the content ``send`` reports being what ``content``
and ``preview`` show, confirmations for accepted deliveries, ``cancel`` and ``health``, and
that a configuration the channel starts with passes its ``preflight``, which writes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

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
from broadcaster.channel import (
    AlertMessage,
    Channel,
    ChannelCapabilities,
    ChannelContext,
    ChannelHealth,
    ConfirmationOutcome,
    OutgoingDelivery,
    SendOutcome,
    SendResult,
)
from broadcaster.config import ChannelConfig
from broadcaster.delivery import Target
from broadcaster.errors import ChannelError, PermanentError, RetryableError
from broadcaster.rendition import render

CONFIRMATION_TIMEOUT = 10.0


def channel_context(data_dir: Path) -> ChannelContext:
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
    message = contract_message()
    return OutgoingDelivery(
        id=delivery_id,
        message=message,
        target=target,
        part=0,
        attempt=1,
        idempotency_key=f"{message.id}:{target.channel}:{target.id}",
        expires_at=message.expires_at,
    )


class ChannelContract:
    """Subclass with fixtures ``channel``, ``reachable_target`` and ``failing``."""

    @pytest.fixture
    async def started(self, channel: Channel) -> AsyncIterator[Channel]:
        await channel.start()
        yield channel
        await channel.stop()

    def test_metadata_types(self, channel: Channel) -> None:
        assert isinstance(channel.capabilities, ChannelCapabilities)
        assert issubclass(channel.config_model, ChannelConfig)
        assert isinstance(channel.config, channel.config_model)

    async def test_plan_keeps_to_its_candidates(
        self, started: Channel, reachable_target: Target
    ) -> None:
        planned = await started.plan(contract_message(), [reachable_target])
        assert all(p.target.id == reachable_target.id for p in planned)
        assert all(isinstance(p.part, int) and p.part >= 0 for p in planned)

    async def test_send_answers_with_a_result(
        self, started: Channel, reachable_target: Target
    ) -> None:
        result = await started.send(contract_delivery(reachable_target))
        assert isinstance(result, SendResult)
        assert result.outcome in (SendOutcome.ACCEPTED, SendOutcome.CONFIRMED)
        if result.outcome is SendOutcome.ACCEPTED and started.capabilities.confirms:
            confirmation = await asyncio.wait_for(
                anext(aiter(started.confirmations())), CONFIRMATION_TIMEOUT
            )
            assert confirmation.delivery_id == 1
            assert confirmation.outcome in tuple(ConfirmationOutcome)

    async def test_what_is_sent_is_what_the_preview_shows(
        self, started: Channel, reachable_target: Target
    ) -> None:
        delivery = contract_delivery(reachable_target, delivery_id=4)
        result = await started.send(delivery)
        preview = await started.preview(delivery.message, [reachable_target])
        assert preview.unit == started.target_unit and preview.targets >= 1
        if result.content is not None:
            content = await started.content(delivery.message, reachable_target, delivery.part)
            assert result.content == content
            assert result.content in preview.contents

    async def test_failure_is_an_exception_of_the_tree(
        self, failing: tuple[Channel, Target]
    ) -> None:
        channel, target = failing
        with pytest.raises(ChannelError) as err:
            await channel.send(contract_delivery(target, delivery_id=2))
        assert isinstance(err.value, RetryableError | PermanentError)

    async def test_a_working_configuration_passes_its_preflight(self, channel: Channel) -> None:
        """Before ``start`` (the check writes nothing) and after it (what ``start`` wrote, such
        as a generated key, reads back)."""
        data_dir = channel.context.data_dir
        before = _files(data_dir)
        assert channel.preflight(channel.name, channel.config, data_dir) == []
        assert _files(data_dir) == before
        await channel.start()
        try:
            assert channel.preflight(channel.name, channel.config, data_dir) == []
        finally:
            await channel.stop()

    async def test_cancel_and_health(self, started: Channel, reachable_target: Target) -> None:
        delivery = contract_delivery(reachable_target, delivery_id=3)
        await started.send(delivery)
        await started.cancel(delivery)
        assert isinstance(await started.health(), ChannelHealth)


def _files(folder: Path) -> dict[str, int]:
    """Every entry under ``folder`` with its modification time (ns)."""
    return {str(path): path.stat().st_mtime_ns for path in folder.rglob("*")}
