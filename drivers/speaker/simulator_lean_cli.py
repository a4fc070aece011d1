"""``python -m drivers.speaker.simulator_lean_cli``: a lean box fleet for benchmarks.

Connects ``--boxes`` lean boxes (:mod:`drivers.speaker.simulator_lean`) and prints
``ready <n>``. Then it reads commands, one a line, on standard input: ``arrivals`` prints one
JSON line ``{"arrivals": [...], "downloads": [...], "download_failures": n,
"download_bytes": n, "cpu_s": ..., "loop": ...}`` (the wall-clock time each box's first command
arrived and each box verified its download (``--download``), sorted, how many downloads failed,
the bytes of the answers, the CPU seconds this process has spent, and its event loop),
``reset`` forgets the arrivals and downloads; end of input stops the fleet.

``--loop`` chooses the event loop (:mod:`drivers.speaker.event_loops`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys

from drivers.speaker.errors import SpeakerError
from drivers.speaker.event_loops import add_loop_option, loop_name, run
from drivers.speaker.simulator_lean import LeanFleet, LeanFleetConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Lean simulated loudspeaker boxes.")
    parser.add_argument("--link", required=True, help="tcp://host:port or mqtt://host:port")
    parser.add_argument("--fleet-secret", required=True, help="hex secret the box keys derive from")
    parser.add_argument("--boxes", type=int, default=10)
    parser.add_argument("--first-index", type=int, default=0)
    parser.add_argument("--id-prefix", default="sim-")
    parser.add_argument("--areas", default="", help="comma-separated area codes")
    parser.add_argument("--bare-topic", help="bare MQTT subscribers of this topic instead")
    parser.add_argument(
        "--command-qos", type=int, choices=(0, 1), default=1, help="of the MQTT subscriptions"
    )
    parser.add_argument("--connect-timeout-s", type=float, default=120.0)
    parser.add_argument(
        "--play-s", type=float, default=0.0, help="how long a play command plays (default 0)"
    )
    parser.add_argument("--source-host", help="local address to connect from (127.0.0.2, …)")
    parser.add_argument(
        "--download",
        action="store_true",
        help="fetch and verify the sealed audio of play commands before they play",
    )
    add_loop_option(parser)
    return parser


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _serve(fleet: LeanFleet, connect_timeout_s: float, loop: str) -> int:
    try:
        async with asyncio.timeout(connect_timeout_s):
            await fleet.start()
    except (TimeoutError, OSError) as exc:
        print(f"simulator: not every box could connect: {exc!r}", file=sys.stderr)
        fleet.close()
        return 1
    print(f"ready {len(fleet.boxes)}", flush=True)
    while line := await asyncio.to_thread(sys.stdin.readline):
        if line.strip() == "arrivals":
            fetching = fleet.fetching
            answer = {
                "arrivals": fleet.arrivals(),
                "downloads": fleet.downloads(),
                "download_failures": fetching.failures if fetching is not None else 0,
                "download_bytes": fetching.downloads.bytes if fetching is not None else 0,
                "cpu_s": _cpu_s(),
                "loop": loop,
            }
            print(json.dumps(answer), flush=True)
        elif line.strip() == "reset":
            fleet.reset()
    fleet.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = LeanFleetConfig(
            url=args.link,
            fleet_secret=bytes.fromhex(args.fleet_secret),
            boxes=args.boxes,
            first_index=args.first_index,
            id_prefix=args.id_prefix,
            areas=tuple(a for a in args.areas.split(",") if a),
            bare_topic=args.bare_topic,
            command_qos=args.command_qos,
            source_host=args.source_host,
            play_s=args.play_s,
            download=args.download,
        )
        fleet = LeanFleet(config)
        loop = loop_name(args.loop)
    except (ValueError, SpeakerError) as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    return run(_serve(fleet, args.connect_timeout_s, loop), loop)


if __name__ == "__main__":
    sys.exit(main())
