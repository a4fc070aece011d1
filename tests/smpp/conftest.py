"""Fixtures for the SMPP tests: a simulated SMSC on a loopback port (stopped, and checked for
left-over driver tasks, after each test), and client settings that reconnect fast."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from drivers.smpp.client import SmppClientConfig
from drivers.smpp.simulator import smpp_simulator
from drivers.smsgw.simulator import SmscFaults, SmscSettings, SmscSimulator

from ..smsgw.leaks import assert_no_driver_tasks

ACCOUNTS = {"warn": "secret"}
SimulatorFactory = Callable[..., Awaitable[SmscSimulator[Any]]]


@pytest.fixture
async def make_smsc() -> AsyncIterator[SimulatorFactory]:
    started: list[SmscSimulator[Any]] = []

    async def factory(faults: SmscFaults | None = None, **settings: Any) -> SmscSimulator[Any]:
        settings.setdefault("accounts", dict(ACCOUNTS))
        settings.setdefault("receipt_delay", 0.05)
        simulator = smpp_simulator(SmscSettings(**settings), faults)
        await simulator.start()
        started.append(simulator)
        return simulator

    yield factory
    for simulator in started:
        await simulator.stop()
    await assert_no_driver_tasks()


def client_config(port: int, **settings: Any) -> SmppClientConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "system_id": "warn",
        "password": "secret",
        "source_addr": "12110",
        "request_timeout": 3.0,
        "connect_timeout": 3.0,
        "reconnect_min": 0.05,
        "reconnect_max": 0.2,
    }
    values.update(settings)
    return SmppClientConfig(**values)
