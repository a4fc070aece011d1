"""The contract suite run against ``SinkChannel`` and each broken channel of ``broken.py``.

Not collected by the project's own run: ``test_contract_catches.py`` runs it in a separate
pytest, in pytest-asyncio's strict mode and in auto mode, and reads which rule failed where.
Its fixtures are marked the way an integrator's must be in strict mode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import pytest
import pytest_asyncio

from broadcaster.channel import Channel
from broadcaster.delivery import Target
from broadcaster.testing.contract import ChannelContract, JsonLinesSink, channel_context
from tests.contract import broken


class SinkContract(ChannelContract):
    kind: ClassVar[type[broken.SinkChannel]] = broken.SinkChannel
    settings: ClassVar[dict[str, str]] = {"password": "hunter2-very-secret"}
    confirmation_timeout = 1.0  # the sink is a local file: what it lacks now it will not get

    def build(self, data_dir: Path) -> Channel:
        data_dir.mkdir(parents=True, exist_ok=True)
        config = self.kind.config_model.model_validate({"type": "sink"} | self.settings)
        return self.kind("sink", config, channel_context(data_dir))

    @pytest.fixture
    def channel(self, tmp_path: Path) -> Channel:
        return self.build(tmp_path / "main")

    @pytest.fixture
    def reachable_target(self) -> Target:
        return Target(id="t1", channel="sink", name="one", address="here")

    @pytest.fixture
    def delivery_sink(self, tmp_path: Path) -> JsonLinesSink:
        return JsonLinesSink(tmp_path / "main" / broken.SINK, key="key")

    @pytest_asyncio.fixture
    async def permanent_failure(self, tmp_path: Path) -> AsyncIterator[tuple[Channel, Target]]:
        channel = self.build(tmp_path / "permanent")
        await channel.start()
        yield channel, Target(id="t2", channel="sink", name="no address")
        await channel.stop()

    @pytest_asyncio.fixture
    async def transient_failure(self, tmp_path: Path) -> AsyncIterator[tuple[Channel, Target]]:
        channel = self.build(tmp_path / "transient")
        await channel.start()
        yield channel, Target(id="t3", channel="sink", name="down", address="down")
        await channel.stop()


class TestSinkChannel(SinkContract):
    pass


class TestConfirmsWithoutEffect(SinkContract):
    kind = broken.ConfirmsWithoutEffect


class TestPlansTwice(SinkContract):
    kind = broken.PlansTwice


class TestPlansStrangers(SinkContract):
    kind = broken.PlansStrangers


class TestRaisesFromProbe(SinkContract):
    kind = broken.RaisesFromProbe


class TestRaisesFromPreview(SinkContract):
    kind = broken.RaisesFromPreview


class TestSendsOtherThanPreviewed(SinkContract):
    kind = broken.SendsOtherThanPreviewed


class TestRaisesFromHealth(SinkContract):
    kind = broken.RaisesFromHealth


class TestRaisesFromCancel(SinkContract):
    kind = broken.RaisesFromCancel


class TestPermanentAsRetryable(SinkContract):
    kind = broken.PermanentAsRetryable


class TestRetryableAsPermanent(SinkContract):
    kind = broken.RetryableAsPermanent


class TestSwallowsCancellation(SinkContract):
    kind = broken.SwallowsCancellation


class TestAcceptsWithoutConfirming(SinkContract):
    kind = broken.AcceptsWithoutConfirming


class TestLeaksTask(SinkContract):
    kind = broken.LeaksTask


class TestLeaksThread(SinkContract):
    kind = broken.LeaksThread


class TestShowsItsSecret(SinkContract):
    kind = broken.ShowsItsSecret
    settings: ClassVar[dict[str, str]] = {"api_key": "k-123456"}


class TestUnregistered(SinkContract):
    kind = broken.Unregistered


class TestUnresolvable(SinkContract):
    kind = broken.Unresolvable

    @pytest.fixture
    def entry_point_name(self) -> str:
        return "contract-unresolvable"
