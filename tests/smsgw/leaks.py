"""A check that a gateway test left no task of the drivers running."""

from __future__ import annotations

import asyncio
from typing import Any


def _driver_task(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and "/drivers/" in code.co_filename


async def assert_no_driver_tasks() -> None:
    """Fail if a task started by code under ``drivers/`` is still running."""
    await asyncio.sleep(0)
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done() and _driver_task(t)]
    assert not left, f"tasks left running: {left}"
