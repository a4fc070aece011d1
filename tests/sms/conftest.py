"""Fixtures for the SMS channel tests: AT-modem simulators on real ptys behind one network.

Threads (simulators, the network clock, modem workers) are checked by the suite-wide
``no_leaked_threads`` fixture; service tasks by ``tests.core.support.running``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.gsm.simulator import AtModemSimulator, ModemSimulatorConfig, ModemSimulatorFaults
from drivers.gsm.simulator_network import SimulatedNetwork

SimulatorFactory = Callable[..., AtModemSimulator]


@pytest.fixture
def network() -> Iterator[SimulatedNetwork]:
    shared = SimulatedNetwork()
    yield shared
    shared.stop()


@pytest.fixture
def make_simulator(network: SimulatedNetwork, tmp_path: Path) -> Iterator[SimulatorFactory]:
    """Start simulators on the shared network, each behind a stable link under tmp_path."""
    started: list[AtModemSimulator] = []

    def factory(name: str = "sim0", faults: ModemSimulatorFaults | None = None) -> AtModemSimulator:
        config = ModemSimulatorConfig(name=name, link_path=str(tmp_path / f"tty{name}"))
        simulator = AtModemSimulator(config, network, faults)
        simulator.start()
        started.append(simulator)
        return simulator

    yield factory
    for simulator in started:
        simulator.stop()


def modem_table(name: str, port: str, **settings: Any) -> dict[str, Any]:
    """A ``[[channels.sms.modems]]`` entry with short timeouts for tests of failure paths."""
    return {
        "name": name,
        "port": port,
        "command_timeout_seconds": 1.0,
        "send_timeout_seconds": 3.0,
        "reconnect_interval_seconds": 0.05,
    } | settings


def sms_channel_table(modems: list[dict[str, Any]], **settings: Any) -> dict[str, Any]:
    """A ``[channels.sms]`` table: status reports on, quick pool retries."""
    return {
        "type": "sms",
        "modems": modems,
        "signature": "【乌兰察布市应急管理局】",
        "signatures": {"en": "Ulanqab EMB: "},
        "retry_delay_seconds": 0.01,
        "confirm_timeout_seconds": 5,
    } | settings
