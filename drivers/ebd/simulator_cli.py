"""``broadcaster sim ebplatform``: run a simulated 应急广播平台 until Ctrl-C.

Prints ``listening <url>`` and ``identity <EBRID> cert <id> key <public point>``, then one line
per package received, refused or state pushed. Without ``--key`` it makes a fresh key for the
run; without ``--trust`` it does not check signatures (and says so). ``--send-ebm URL`` makes it
act as the upper platform and send one test EBM to URL after starting.
Fault hooks: ``--refuse CODE``, ``--drop``, ``--garbage``, ``--answer-delay S``,
``--never-send-state``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from drivers.ebd.codes import BrdStateCode, ResultCode, Severity, check_ebrid
from drivers.ebd.errors import EbdError
from drivers.ebd.keys import TrustList, load_private_key
from drivers.ebd.simulator import EbdPlatformSimulator, PlatformBehaviour
from drivers.ebd.sm2 import Sm2Signer, Sm2Verifier
from drivers.ebd.testing import COUNTY_PLATFORM_EBRID, make_identity, sample_ebm


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broadcaster sim ebplatform",
        description="Simulated emergency-broadcast platform (EBD packages over HTTP).",
    )
    parser.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:7070")
    parser.add_argument("--path", default="/ebd", help="path packages are POSTed to")
    parser.add_argument("--ebrid", default=COUNTY_PLATFORM_EBRID, help="this platform's EBRID")
    parser.add_argument("--key", type=Path, help="SM2 private key PEM (mode 600)")
    parser.add_argument("--cert-id", help="6-byte certificate id in hex (with --key)")
    parser.add_argument("--trust", type=Path, action="append", help="peer certificate or folder")
    parser.add_argument("--state-url", help="where to push EBMStateResponse (default SRC/URL)")
    parser.add_argument("--state-delay", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument(
        "--state-outcome", type=int, default=int(BrdStateCode.SUCCEEDED), metavar="CODE"
    )
    parser.add_argument("--state-inline", action="store_true", help="answer polls in the reply")
    parser.add_argument("--refuse", type=int, metavar="CODE", help="answer every package so")
    parser.add_argument("--drop", action="store_true", help="drop every connection")
    parser.add_argument("--garbage", action="store_true", help="answer with garbage")
    parser.add_argument("--answer-delay", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--never-send-state", action="store_true")
    parser.add_argument("--send-ebm", metavar="URL", help="send one test EBM to URL")
    return parser


def _build(args: argparse.Namespace) -> EbdPlatformSimulator:
    check_ebrid(args.ebrid, "--ebrid")
    if args.key is not None:
        if not args.cert_id:
            raise EbdError("--key needs --cert-id")
        try:
            cert_id = bytes.fromhex(args.cert_id)
        except ValueError as error:
            raise EbdError(f"--cert-id: {args.cert_id!r} is not hex") from error
        signer = Sm2Signer(load_private_key(args.key), cert_id)
    else:
        signer = make_identity(args.ebrid).signer()
    print(f"identity {args.ebrid} cert {signer.cert_id.hex()} key {signer.public_key.hex()}")
    verifier = Sm2Verifier(TrustList.from_paths(args.trust)) if args.trust else None
    if verifier is None:
        print("signatures are not checked (no --trust given)")
    try:
        behaviour = PlatformBehaviour(
            state_url=args.state_url,
            state_delay=args.state_delay,
            state_outcome=BrdStateCode(args.state_outcome),
            state_inline=args.state_inline,
            path=args.path,
        )
        simulator = EbdPlatformSimulator(args.ebrid, signer, verifier, behaviour)
        faults = simulator.faults
        faults.refuse_with = ResultCode(args.refuse) if args.refuse is not None else None
    except ValueError as error:
        raise EbdError(f"bad option: {error}") from error
    faults.drop_connection = args.drop
    faults.garbage = args.garbage
    faults.answer_delay = args.answer_delay
    faults.never_send_state = args.never_send_state
    return simulator


async def _report(simulator: EbdPlatformSimulator) -> None:
    seen = (0, 0, 0)
    while True:
        await simulator.changed.wait()
        for incoming in simulator.received[seen[0] :]:
            ebd = incoming.ebd
            print(f"received {ebd.ebd_type.value} {ebd.ebdid} from {ebd.src_ebrid}", flush=True)
        for code, reason in simulator.refused[seen[1] :]:
            print(f"refused ResultCode {int(code)}: {reason}", flush=True)
        for push in simulator.pushes[seen[2] :]:
            outcome = push.error or f"ResultCode {push.result}"
            what = f"{push.ebmid} {int(push.state)}" if push.state is not None else ""
            print(f"pushed {push.kind.value} {what} to {push.url}: {outcome}", flush=True)
        seen = (len(simulator.received), len(simulator.refused), len(simulator.pushes))


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise EbdError(f"--listen: {args.listen!r} is not HOST:PORT")
    simulator = _build(args)
    try:
        url = await simulator.start(host, int(port))
    except OSError as error:
        raise EbdError(f"--listen: cannot listen on {args.listen}: {error}") from error
    reporter = loop.create_task(_report(simulator))
    try:
        print(f"listening {url}", flush=True)
        if args.send_ebm:
            ebm = sample_ebm(args.ebrid, severity=Severity.TEST, event_type="00000")
            reply = await simulator.send_ebm(args.send_ebm, ebm)
            print(f"sent EBM {ebm.ebmid}: {reply.ebd.body}", flush=True)
        await stop.wait()
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        await simulator.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the simulator; 0 after Ctrl-C, 2 for bad options or a failed send."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        asyncio.run(_serve(args))
    except EbdError as error:
        print(f"broadcaster sim ebplatform: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
