"""Fixtures for the gateway-sms channel: simulated SMPP and CMPP gateways on loopback ports
(stopped, and checked for left-over driver tasks, after each test), channel tables pointing at
them, and subscriber groups of generated numbers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from drivers.cmpp.simulator import cmpp_simulator
from drivers.smpp.simulator import smpp_simulator
from drivers.smsgw.simulator import SmscFaults, SmscSettings, SmscSimulator
from tests.core.support import COUNTY

from ..smsgw.leaks import assert_no_driver_tasks

ACCOUNTS = {"smpp": {"warn": "pw7Qx2"}, "cmpp": {"901234": "k9Zt4w"}}
GatewayFactory = Callable[..., Awaitable[SmscSimulator[Any]]]


@pytest.fixture(params=["smpp", "cmpp"])
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_gateway(protocol: str) -> AsyncIterator[GatewayFactory]:
    """Start a simulated gateway of the test's protocol."""
    started: list[SmscSimulator[Any]] = []

    async def factory(faults: SmscFaults | None = None, **settings: Any) -> SmscSimulator[Any]:
        settings.setdefault("accounts", dict(ACCOUNTS[protocol]))
        settings.setdefault("receipt_delay", 0.02)
        settings.setdefault("window", 64)
        made = SmscSettings(**settings)
        simulator = (
            smpp_simulator(made, faults) if protocol == "smpp" else cmpp_simulator(made, faults)
        )
        await simulator.start()
        started.append(simulator)
        return simulator

    yield factory
    for simulator in started:
        await simulator.stop()
    await assert_no_driver_tasks()


def gateway_table(protocol: str, port: int, **extra: Any) -> dict[str, Any]:
    """A ``[channels.<name>]`` table of type gateway-sms for the simulator on ``port``."""
    account: dict[str, Any] = (
        {"system_id": "warn", "password": "pw7Qx2", "source_addr": "12110"}
        if protocol == "smpp"
        else {"sp_id": "901234", "shared_secret": "k9Zt4w", "src_id": "1065012110"}
    )
    return (
        {
            "type": "gateway-sms",
            "protocol": protocol,
            "host": "127.0.0.1",
            "port": port,
            "signature": "【乌兰察布市应急管理局】",
            "binds": 2,
            "window": 32,
            "concurrency": 256,
            "request_timeout_seconds": 3,
            "connect_timeout_seconds": 3,
            "reconnect_min_seconds": 0.05,
            "reconnect_max_seconds": 0.2,
            "throttle_pause_seconds": 0.02,
            "throttle_pause_max_seconds": 0.2,
        }
        | account
        | extra
    )


def group(
    group_id: str, numbers: list[str], channel: str = "gateway", **extra: Any
) -> dict[str, Any]:
    """A registry group in the county."""
    return {
        "id": group_id,
        "channel": channel,
        "name": f"{group_id}村级信息员",
        "division": f"{COUNTY[:6]}001000",
        "lat": 40.894,
        "lon": 112.577,
        "address": ",".join(numbers),
        "languages": ["zh-CN", "en"],
    } | extra


def numbers(start: int, count: int) -> list[str]:
    return [f"+86139{n:08d}" for n in range(start, start + count)]


def groups(count: int, size: int = 1000, channel: str = "gateway") -> list[dict[str, Any]]:
    """``count`` numbers in groups of ``size``."""
    return [
        group(f"g{n:03d}", numbers(n * size, min(size, count - n * size)), channel)
        for n in range((count + size - 1) // size)
    ]
