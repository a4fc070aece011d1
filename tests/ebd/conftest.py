"""Fixtures for the EBD driver tests: platform identities and a check that fails on leaked tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from drivers.ebd.testing import (
    CITY_PLATFORM_EBRID,
    COUNTY_PLATFORM_EBRID,
    PlatformIdentity,
    make_identity,
)


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running (servers, pushes)."""
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leaked, f"tasks left running: {leaked}"


@pytest.fixture(scope="session")
def city() -> PlatformIdentity:
    return make_identity(CITY_PLATFORM_EBRID)


@pytest.fixture(scope="session")
def county() -> PlatformIdentity:
    return make_identity(COUNTY_PLATFORM_EBRID)
