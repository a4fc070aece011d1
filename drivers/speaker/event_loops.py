"""Which event loop a box simulator runs on (``--loop``): the standard one, or uvloop (libuv).

A simulator holds thousands of boxes in one process and shares the machine's cores with the
server a bench measures. On uvloop, when it is installed (the test extra installs it), the lean
boxes (:mod:`drivers.speaker.simulator_lean`) spend a fifth to a half less CPU, the full agents,
whose own work weighs more, about a tenth less over MQTT; ``auto`` takes it when it is there.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
from collections.abc import Coroutine
from typing import Any, TypeVar

LOOPS = ("auto", "asyncio", "uvloop")
T = TypeVar("T")


def add_loop_option(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--loop``, one of :data:`LOOPS`."""
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default=default,
        help=f"the event loop (auto: uvloop when installed; default {default})",
    )


def loop_name(asked: str) -> str:
    """The event loop to run: ``asked``, or for ``auto`` uvloop when it is installed; raises
    ValueError when uvloop is asked for and not installed."""
    installed = importlib.util.find_spec("uvloop") is not None
    if asked == "auto":
        return "uvloop" if installed else "asyncio"
    if asked == "uvloop" and not installed:
        raise ValueError("uvloop is not installed (pip install uvloop, or --loop asyncio)")
    return asked


def run(main: Coroutine[Any, Any, T], loop: str) -> T:
    """Run ``main`` to its end on the event loop named ``loop`` (from :func:`loop_name`)."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
