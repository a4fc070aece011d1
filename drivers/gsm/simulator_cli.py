"""``broadcaster sim modem``: run an AT-modem simulator on a pty until Ctrl-C.

Prints the device path to open (``device: /dev/pts/N``), then one line per segment the
simulated network receives, and a summary on exit. Options set per-number behaviour (deliver,
deliver after temporary failures, fail for good, never report) and the fault hooks of the
simulator.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from drivers.gsm.simulator import AtModemSimulator, ModemSimulatorConfig, ModemSimulatorFaults
from drivers.gsm.simulator_network import (
    NetworkRecord,
    RecipientBehaviour,
    RecipientRule,
    SimulatedNetwork,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broadcaster sim modem",
        description="Simulate a GSM modem (PDU mode) on a pseudo-terminal.",
    )
    parser.add_argument("--name", default="sim0", help="modem name shown in records")
    parser.add_argument("--link", metavar="PATH", help="keep a symlink to the pty at PATH")
    parser.add_argument("--pin", help="SIM PIN the driver must enter")
    parser.add_argument("--rssi", type=int, default=21, help="AT+CSQ signal 0-31 (99 unknown)")
    parser.add_argument(
        "--registration", type=int, default=1, help="AT+CREG? state (1 home, 5 roaming)"
    )
    network = parser.add_argument_group("network")
    network.add_argument("--report-delay", type=float, default=0.5, metavar="S")
    network.add_argument("--report-gap", type=float, default=0.5, metavar="S")
    network.add_argument(
        "--default",
        choices=[b.value for b in RecipientBehaviour],
        default=RecipientBehaviour.DELIVER.value,
        help="behaviour for numbers without a rule",
    )
    for behaviour in RecipientBehaviour:
        network.add_argument(
            f"--{behaviour.value}",
            action="append",
            default=[],
            metavar="NUMBER",
            help=f"numbers that get the {behaviour.value!r} behaviour (repeatable)",
        )
    faults = parser.add_argument_group("faults")
    faults.add_argument("--cmgs-delay", type=float, default=0.0, metavar="S")
    faults.add_argument("--unsolicited-after-prompt", metavar="LINE")
    faults.add_argument("--cms-error", type=int, action="append", default=[], metavar="CODE")
    faults.add_argument("--stall", action="store_true", help="never answer anything")
    faults.add_argument("--close-on-send", action="store_true", help="vanish on first PDU")
    faults.add_argument("--split-cds", action="store_true", help="split +CDS across writes")
    faults.add_argument("--garbage", action="store_true", help="answer every command garbage")
    return parser


def _network(options: argparse.Namespace) -> SimulatedNetwork:
    rules = {
        number: RecipientRule(behaviour)
        for behaviour in RecipientBehaviour
        for number in getattr(options, behaviour.value)
    }
    return SimulatedNetwork(
        report_delay=options.report_delay,
        report_gap=options.report_gap,
        default_rule=RecipientRule(RecipientBehaviour(options.default)),
        rules=rules,
    )


def _print_record(record: NetworkRecord) -> None:
    print(
        f"received {record.modem} mr={record.message_reference} to {record.number}"
        f" part {record.sequence}/{record.total} {record.encoding.name}: {record.text!r}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until SIGINT or SIGTERM; return 0."""
    options = build_parser().parse_args(argv)
    network = _network(options)
    network.listeners.append(_print_record)
    simulator = AtModemSimulator(
        ModemSimulatorConfig(
            name=options.name,
            link_path=options.link,
            rssi=options.rssi,
            registration=options.registration,
            pin=options.pin,
        ),
        network,
        ModemSimulatorFaults(
            cmgs_delay=options.cmgs_delay,
            unsolicited_after_prompt=options.unsolicited_after_prompt,
            cms_errors=list(options.cms_error),
            stall=options.stall,
            close_on_send=options.close_on_send,
            split_cds=options.split_cds,
            garbage=options.garbage,
        ),
    )
    finished = threading.Event()
    previous = {
        number: signal.signal(number, lambda *_: finished.set())
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    simulator.start()
    try:
        print(f"device: {simulator.device_path}", flush=True)
        finished.wait()
    finally:
        simulator.stop()
        network.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
    print(f"stopped: {len(network.records)} segments received", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
