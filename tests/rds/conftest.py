"""Fixtures for the RDS driver tests: simulators and a check that fails on leaked tasks.

Threads (the serial reader) are checked by the suite-wide ``no_leaked_threads`` fixture.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from drivers.rds import RdsEncoderConfig, RdsEncoderSimulator


def fast_config(url: str, **settings: object) -> RdsEncoderConfig:
    """A config with short timeouts so failure paths stay quick."""
    values: dict[str, object] = {"ack_timeout": 0.5, "max_attempts": 3, "connect_timeout": 2.0}
    values.update(settings)
    return RdsEncoderConfig(url, **values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running (readers, servers, restores)."""
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leaked, f"tasks left running: {leaked}"


@pytest.fixture
async def simulator() -> AsyncIterator[RdsEncoderSimulator]:
    async with RdsEncoderSimulator() as sim:
        yield sim


@pytest.fixture
async def ascii_simulator() -> AsyncIterator[RdsEncoderSimulator]:
    async with RdsEncoderSimulator(dialect="ascii") as sim:
        yield sim
