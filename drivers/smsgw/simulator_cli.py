"""``broadcaster sim smsc``: run a simulated operator SMS gateway (SMPP 3.4 or CMPP 2.0/3.0).

Prints ``listening: HOST:PORT`` once bound, then one line per accepted segment, and a summary
on Ctrl-C. Options set the accounts, window, rate limit, receipt delay and outcome mix, and
the fault hooks of ``drivers.smsgw.simulator``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import Any

from drivers.smsgw.results import ReceiptState
from drivers.smsgw.segments import join_payload
from drivers.smsgw.simulator import SmscFaults, SmscRecord, SmscSettings, SmscSimulator

OUTCOMES = {
    "delivered": ReceiptState.DELIVERED,
    "undeliverable": ReceiptState.UNDELIVERABLE,
    "expired": ReceiptState.EXPIRED,
}


def _account(value: str) -> tuple[str, str]:
    name, sep, secret = value.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME:SECRET")
    return name, secret


def _outcome(value: str) -> tuple[ReceiptState, float]:
    name, _, weight = value.partition("=")
    if name not in OUTCOMES:
        raise argparse.ArgumentTypeError(f"{name!r} is not one of {', '.join(OUTCOMES)}")
    try:
        share = float(weight or "1")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{weight!r} is not a weight") from None
    if share < 0:
        raise argparse.ArgumentTypeError("a weight cannot be negative")
    return OUTCOMES[name], share


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broadcaster sim smsc", description="Simulate an operator SMS gateway over TCP."
    )
    parser.add_argument("--protocol", choices=["smpp", "cmpp"], default="smpp")
    parser.add_argument(
        "--cmpp-version", choices=["2.0", "3.0"], default="3.0", help="CMPP version to speak"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2775)
    parser.add_argument(
        "--account",
        type=_account,
        action="append",
        default=[],
        metavar="NAME:SECRET",
        help="system_id:password (SMPP) or SP id:shared secret (CMPP); repeatable",
    )
    parser.add_argument("--window", type=int, default=16, help="outstanding submits per bind")
    parser.add_argument("--rate", type=float, default=0.0, help="submits/s per bind; 0 = none")
    parser.add_argument("--receipt-delay", type=float, default=1.0, metavar="S")
    parser.add_argument(
        "--outcome",
        type=_outcome,
        action="append",
        default=[],
        metavar="STATE[=WEIGHT]",
        help="delivered, undeliverable or expired with a weight; repeatable",
    )
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--quiet", action="store_true", help="no line per accepted segment (benchmarks)"
    )
    faults = parser.add_argument_group("faults")
    faults.add_argument("--refuse-binds", action="store_true")
    faults.add_argument("--answer-delay", type=float, default=0.0, metavar="S")
    faults.add_argument("--drop-after", type=int, metavar="N", help="drop after N answers")
    faults.add_argument("--lose-receipts", type=float, default=0.0, metavar="SHARE")
    faults.add_argument("--garbage-after", type=int, metavar="N")
    return parser


def build_simulator(options: argparse.Namespace) -> SmscSimulator[Any]:
    """The simulator the options describe (not started)."""
    settings = SmscSettings(
        host=options.host,
        port=options.port,
        accounts=dict(options.account) or {"broadcaster": "secret"},
        window=options.window,
        rate_per_second=options.rate,
        receipt_delay=options.receipt_delay,
        outcomes=dict(options.outcome) or {ReceiptState.DELIVERED: 1.0},
        seed=options.seed,
    )
    faults = SmscFaults(
        refuse_binds=options.refuse_binds,
        answer_delay=options.answer_delay,
        drop_after_answers=options.drop_after,
        lose_receipts=options.lose_receipts,
        garbage_after_answers=options.garbage_after,
    )
    if options.protocol == "cmpp":
        from drivers.cmpp.simulator import cmpp_simulator

        return cmpp_simulator(settings, faults, version=options.cmpp_version)
    from drivers.smpp.simulator import smpp_simulator

    return smpp_simulator(settings, faults)


def _print_record(record: SmscRecord) -> None:
    segment = record.segment
    text, (_, total, sequence) = join_payload(segment.payload, segment.udhi, segment.coding)
    print(
        f"accepted {record.message_id} from {record.account} to {segment.destination}"
        f" part {sequence}/{total}: {text!r}",
        flush=True,
    )


async def _serve(simulator: SmscSimulator[Any], quiet: bool = False) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    if not quiet:
        simulator.listeners.append(_print_record)
    await simulator.start()
    print(f"listening: {simulator.settings.host}:{simulator.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await simulator.stop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)
    print(
        f"stopped: {len(simulator.records)} segments accepted,"
        f" {len(simulator.receipts_sent)} receipts sent, {simulator.throttled} throttled",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until SIGINT or SIGTERM; 0, or 1 if the port cannot be opened."""
    options = build_parser().parse_args(argv)
    simulator = build_simulator(options)
    try:
        asyncio.run(_serve(simulator, options.quiet))
    except OSError as exc:
        print(f"cannot listen on {options.host}:{options.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
