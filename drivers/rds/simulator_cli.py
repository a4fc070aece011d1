"""``broadcaster sim rds``: run an RDS encoder simulator until Ctrl-C.

Listens on TCP (``--tcp HOST:PORT``, port 0 picks a free one) and/or a pty (``--pty``),
prints one ``listening <url>`` line per transport, then one ``state ...`` line per change
of what listeners would see. Fault hooks: ``--lose-answers N``, ``--damage-frames N``,
``--reject N [--reject-code C]``, ``--silent``, ``--answer-delay S``, ``--unidirectional``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from drivers.rds.errors import RdsConfigError, RdsError
from drivers.rds.simulator import RdsEncoderSimulator
from drivers.rds.simulator_device import DEFAULT_STATION
from drivers.rds.state import EncoderState
from drivers.rds.uecp_elements import CommunicationMode
from drivers.rds.uecp_frame import MAX_ENCODER_ADDRESS, MAX_SITE_ADDRESS, AckCode


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broadcaster sim rds",
        description="Simulated RDS encoder (UECP or ASCII dialect) over TCP and/or a pty.",
    )
    parser.add_argument("--dialect", choices=("uecp", "ascii"), default="uecp")
    parser.add_argument("--tcp", metavar="HOST:PORT", default="127.0.0.1:4001")
    parser.add_argument("--no-tcp", action="store_true", help="do not listen on TCP")
    parser.add_argument("--pty", action="store_true", help="also serve a pseudo-terminal")
    parser.add_argument("--site", type=int, default=0, help="UECP site address (0..1023)")
    parser.add_argument("--encoder", type=int, default=0, help="UECP encoder address (0..63)")
    parser.add_argument("--pi", default=f"{DEFAULT_STATION.pi:04X}", help="initial PI (hex)")
    parser.add_argument("--ps", default=DEFAULT_STATION.ps, help="initial PS")
    parser.add_argument("--lose-answers", type=int, default=0, metavar="N")
    parser.add_argument("--damage-frames", type=int, default=0, metavar="N")
    parser.add_argument("--reject", type=int, default=0, metavar="N")
    parser.add_argument("--reject-code", type=int, default=int(AckCode.MESSAGE_NOT_ACCEPTABLE))
    parser.add_argument("--silent", action="store_true", help="never answer")
    parser.add_argument(
        "--unidirectional",
        action="store_true",
        help="start in UECP communication mode 0 (no answers until a client asks for them)",
    )
    parser.add_argument("--answer-delay", type=float, default=0.0, metavar="SECONDS")
    return parser


def _build(args: argparse.Namespace) -> RdsEncoderSimulator:
    try:
        initial = DEFAULT_STATION.merged(EncoderState(pi=int(args.pi, 16), ps=args.ps)).validate()
        reject_code = AckCode(args.reject_code)
    except ValueError as error:
        raise RdsConfigError(str(error)) from error
    if not 0 <= args.site <= MAX_SITE_ADDRESS or not 0 <= args.encoder <= MAX_ENCODER_ADDRESS:
        raise RdsConfigError(f"--site/--encoder: {args.site}/{args.encoder} out of range")
    simulator = RdsEncoderSimulator(
        dialect=args.dialect,
        site_address=args.site,
        encoder_address=args.encoder,
        initial=initial,
        on_change=lambda state: print(f"state {state.describe()}", flush=True),
    )
    faults = simulator.faults
    faults.lose_answers = args.lose_answers
    faults.damage_frames = args.damage_frames
    faults.reject = args.reject
    faults.reject_code = reject_code
    faults.silent = args.silent
    faults.answer_delay = args.answer_delay
    if args.unidirectional:
        simulator.encoder.communication_mode = CommunicationMode.UNIDIRECTIONAL
    return simulator


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with _build(args) as simulator:
        if not args.no_tcp:
            host, _, port = args.tcp.rpartition(":")
            if not host or not port.isdigit():
                raise RdsConfigError(f"--tcp: {args.tcp!r} is not HOST:PORT")
            try:
                url = await simulator.start_tcp(host, int(port))
            except OSError as error:
                raise RdsConfigError(f"--tcp: cannot listen on {args.tcp}: {error}") from error
            print(f"listening {url}", flush=True)
        if args.pty:
            print(f"listening {simulator.start_pty()}", flush=True)
        print(f"state {simulator.state.describe()}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the simulator; 0 after Ctrl-C, 2 for bad options."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.no_tcp and not args.pty:
        print("broadcaster sim rds: nothing to serve (--no-tcp without --pty)", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(args))
    except RdsError as error:
        print(f"broadcaster sim rds: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
