"""``broadcaster sim speaker``: run a fleet of simulated loudspeaker boxes.

Each box runs the real agent code and uplink; playback is recorded, not heard. Box keys are
derived from the fleet secret (``simulator.box_key``), so a hub registers the same fleet from
the same secret. Prints ``ready <n>`` once every TCP/MQTT box is connected, a summary line
every ``--summary-s`` seconds, and writes every playback as a JSON line to ``--report`` on exit.
It runs on the standard event loop unless ``--loop`` asks for uvloop (or ``auto``: uvloop when
installed, as the benches ask; :mod:`drivers.speaker.event_loops`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import signal
import sys
from pathlib import Path

from drivers.speaker.codec import format_time
from drivers.speaker.errors import SpeakerConfigError, SpeakerError
from drivers.speaker.event_loops import add_loop_option, loop_name, run
from drivers.speaker.simulator import FleetSimulatorConfig, SpeakerFleetSimulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broadcaster sim speaker", description="Simulated loudspeaker box fleet."
    )
    parser.add_argument("--link", required=True, help="tcp://, tls://, mqtt://, serial://")
    parser.add_argument("--fleet-secret", required=True, help="hex secret the box keys derive from")
    parser.add_argument("--boxes", type=int, default=10)
    parser.add_argument("--first-index", type=int, default=0)
    parser.add_argument("--id-prefix", default="sim-")
    parser.add_argument("--areas", default="150902", help="comma-separated area codes")
    parser.add_argument("--work-dir", type=Path, default=Path("speaker-sim"))
    parser.add_argument("--persist-journals", action="store_true")
    parser.add_argument("--play-seconds", type=float, default=0.0)
    parser.add_argument("--fallback-clip")
    parser.add_argument("--heartbeat-s", type=float, default=30.0)
    parser.add_argument("--ca-file", type=Path)
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of commands lost")
    parser.add_argument("--command-delay-s", type=float, default=0.0)
    parser.add_argument("--offline-boxes", type=int, default=0, help="boxes that never connect")
    parser.add_argument(
        "--ignore-acks",
        action="store_true",
        help="acknowledge every stage whatever a command's acks asks for (an older box)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--command-qos", type=int, choices=(0, 1), default=1, help="of the MQTT subscriptions"
    )
    parser.add_argument("--connect-timeout-s", type=float, default=120.0)
    parser.add_argument("--summary-s", type=float, default=0.0, help="0: no summaries")
    parser.add_argument("--duration-s", type=float, default=0.0, help="0: run until signalled")
    parser.add_argument("--report", type=Path, help="write playbacks here as JSON lines")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING"])
    add_loop_option(parser, default="asyncio")
    return parser


def _config(args: argparse.Namespace) -> FleetSimulatorConfig:
    try:
        secret = bytes.fromhex(args.fleet_secret)
    except ValueError as exc:
        raise SpeakerConfigError("--fleet-secret must be hexadecimal") from exc
    return FleetSimulatorConfig(
        url=args.link,
        fleet_secret=secret,
        boxes=args.boxes,
        first_index=args.first_index,
        id_prefix=args.id_prefix,
        areas=tuple(a for a in args.areas.split(",") if a),
        work_dir=args.work_dir,
        persist_journals=args.persist_journals,
        play_seconds=args.play_seconds,
        fallback_clip=args.fallback_clip,
        heartbeat_s=args.heartbeat_s,
        ca_file=args.ca_file,
        drop_rate=args.drop_rate,
        command_delay_s=args.command_delay_s,
        offline_boxes=args.offline_boxes,
        ignore_acks=args.ignore_acks,
        seed=args.seed,
        command_qos=args.command_qos,
    )


def _write_report(fleet: SpeakerFleetSimulator, path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in fleet.log.records:
            request = record.request
            line = {
                "box_id": request.box_id,
                "cmd_id": request.cmd_id,
                "alert_id": request.alert_id,
                "source": request.source,
                "file": request.path.name,
                "volume": request.volume,
                "started_at": format_time(record.started_at),
                "ended_at": format_time(record.ended_at) if record.ended_at else None,
                "interrupted": record.interrupted,
            }
            handle.write(json.dumps(line) + "\n")


async def _run(args: argparse.Namespace, config: FleetSimulatorConfig) -> None:
    await asyncio.to_thread((config.work_dir / "clips").mkdir, parents=True, exist_ok=True)
    fleet = SpeakerFleetSimulator(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await fleet.start()
    try:
        await fleet.wait_connected(args.connect_timeout_s)
        # Thousands of idle boxes are long-lived objects: keep the cyclic garbage collector
        # from scanning them again and again while an alert runs.
        gc.freeze()
        print(f"ready {sum(not b.offline for b in fleet.boxes)}", flush=True)
        deadline = loop.time() + args.duration_s if args.duration_s else None
        while not stop.is_set():
            period: float | None = args.summary_s or None
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                period = min(period or remaining, remaining)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(period):
                    await stop.wait()
            if args.summary_s:
                done = len(fleet.log.completed())
                print(f"boxes {len(fleet.boxes)} playbacks {done}", flush=True)
    finally:
        await fleet.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if args.report:
            await asyncio.to_thread(_write_report, fleet, args.report)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``broadcaster sim speaker``."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        loop = loop_name(args.loop)
    except ValueError as exc:
        print(f"speaker simulator: {exc}", file=sys.stderr)
        return 2
    try:
        config = _config(args)
        run(_run(args, config), loop)
    except SpeakerError as exc:
        print(f"speaker simulator: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, SpeakerConfigError) else 1
    except TimeoutError:
        print("speaker simulator: boxes did not all connect in time", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
