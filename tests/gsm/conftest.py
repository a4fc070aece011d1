"""Fixtures for the GSM driver tests: simulators on real ptys sharing one simulated network.

Threads are checked by the suite-wide ``no_leaked_threads`` fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.gsm.config import GsmModemConfig
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
    """Start simulators on the shared network; each gets a stable symlink under tmp_path."""
    started: list[AtModemSimulator] = []

    def factory(
        name: str = "sim0",
        faults: ModemSimulatorFaults | None = None,
        **config: object,
    ) -> AtModemSimulator:
        config.setdefault("link_path", str(tmp_path / f"tty{name}"))
        simulator = AtModemSimulator(
            ModemSimulatorConfig(name=name, **config),  # type: ignore[arg-type]
            network,
            faults,
        )
        simulator.start()
        started.append(simulator)
        return simulator

    yield factory
    for simulator in started:
        simulator.stop()


def fast_config(port: str, name: str = "m1", **settings: object) -> GsmModemConfig:
    """A modem config that reconnects quickly; tests of failure paths shorten the timeouts."""
    values: dict[str, object] = {
        "command_timeout": 3.0,
        "prompt_timeout": 3.0,
        "send_timeout": 5.0,
        "reconnect_interval": 0.05,
    }
    values.update(settings)
    return GsmModemConfig(name, port, **values)  # type: ignore[arg-type]
