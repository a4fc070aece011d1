"""``broadcaster-box``: the agent that runs on a village loudspeaker box.

Reads its TOML configuration (docs/protocols/speaker.md, section 6), connects to the server
over TCP/TLS, MQTT or a serial line, and plays what it is told through the configured player
command until SIGTERM or SIGINT. Exit status: 0 after a clean stop, 1 on a runtime failure,
2 for bad configuration; errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from drivers.speaker.agent import BoxAgent
from drivers.speaker.agent_config import BoxAgentConfig, load_agent_config
from drivers.speaker.errors import SpeakerConfigError, SpeakerError
from drivers.speaker.link_url import client_tls_context, open_uplink
from drivers.speaker.player import CommandPlayer, Player
from drivers.speaker.store import ClipStore, MediaFetcher, PlayJournal
from drivers.speaker.uplinks import MqttUplink, SerialBoxLine, TcpUplink

DEFAULT_CONFIG = Path("/etc/broadcaster-box/box.toml")

log = logging.getLogger("broadcaster-box")


def _prepare_dirs(config: BoxAgentConfig) -> None:
    for directory in (config.state_dir, config.clips_dir, config.cache_dir):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpeakerConfigError(f"state_dir: cannot create {directory}: {exc}") from exc


async def run_agent(
    config: BoxAgentConfig, player: Player | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run the agent and its uplink until ``stop`` is set (or SIGTERM/SIGINT arrives)."""
    await asyncio.to_thread(_prepare_dirs, config)
    fetcher = MediaFetcher(config.cache_dir)
    agent = BoxAgent(
        config.identity(),
        player or CommandPlayer(config.player),
        ClipStore(config.clips_dir),
        fetcher,
        PlayJournal(config.journal_path),
        config.behaviour,
    )
    uplink: TcpUplink | MqttUplink | SerialBoxLine
    if config.link.scheme == "serial":
        assert config.serial_address is not None
        uplink = SerialBoxLine(
            config.link.serial_url, {config.serial_address: agent}, config.link.baudrate
        )
    else:
        tls = client_tls_context(config.ca_file) if config.link.uses_tls else None
        uplink = open_uplink(
            agent, config.link, tls, config.mqtt_credentials, config.mqtt_command_qos
        )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("box %s starting, link %s", config.box_id, config.link.scheme)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(agent.run()), group.create_task(uplink.run())]
            await stop.wait()
            for task in tasks:
                task.cancel()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await fetcher.aclose()
    log.info("box %s stopped", config.box_id)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _speaker_error(exc: BaseException) -> SpeakerError | None:
    """The first SpeakerError in ``exc``, looking inside exception groups."""
    if isinstance(exc, SpeakerError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _speaker_error(inner)) is not None:
                return found
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broadcaster-box", description="Loudspeaker box agent of the broadcaster system."
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TOML configuration")
    parser.add_argument("--check-config", action="store_true", help="validate and exit")
    parser.add_argument("--dump-config", action="store_true", help="print it (keys masked)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``broadcaster-box``."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_agent_config(args.config)
    except SpeakerConfigError as exc:
        print(f"broadcaster-box: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.dump_config:
        print(json.dumps(_plain(config.dump()), indent=2))
        return 0
    if args.check_config:
        print(f"broadcaster-box: configuration of box {config.box_id} is valid")
        return 0
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_agent(config))
    except (SpeakerError, ExceptionGroup) as exc:
        error = _speaker_error(exc)
        if error is None:
            raise
        print(f"broadcaster-box: {error}", file=sys.stderr)
        return 2 if isinstance(error, SpeakerConfigError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
