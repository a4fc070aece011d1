"""Fixtures for the loudspeaker channel tests: the real core service and its HTTP server with
the channel's hub on one transport (TCP, a serial line over a pty pair, or MQTT through a
Mosquitto started here), and real box agents (the fleet simulator) in villages of two
counties that download the audio from the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from audio import AudioError, ChannelProfile
from audio.render import Render
from broadcaster.api.app import make_app
from broadcaster.channel import AlertMessage
from broadcaster.config import AudioConfig, Config
from broadcaster.publisher import AudioPublisher
from broadcaster.service import BroadcasterService
from channels.loudspeaker import LoudspeakerChannel
from channels.loudspeaker.boxes import RegistryFleetConfig
from drivers.mqtt.testing_nats import NatsMqttCluster
from drivers.speaker import SpeakerFleetSimulator
from drivers.speaker.testing import MosquittoBroker, NullModem, free_port
from tests.core.support import COUNTY, OTHER_COUNTY, make_config

SECRET = "box-provisioning-secret-for-tests"
FALLBACK = b"stored generic warning clip"
FALLBACK_CLIP = {"id": "generic", "sha256": hashlib.sha256(FALLBACK).hexdigest()}
IN_COUNTY = [f"{COUNTY[:6]}001{n:03d}" for n in (1, 2, 3)]
ELSEWHERE = [f"{OTHER_COUNTY[:6]}001{n:03d}" for n in (1, 2)]


@pytest.fixture(autouse=True)
async def no_leaks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running or serial threads alive."""
    yield
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leftover, f"leaked tasks: {leftover}"
    threads = [t.name for t in threading.enumerate() if t.name.startswith(("serial", "null-"))]
    assert not threads, f"leaked threads: {threads}"


def box_targets(
    transport: str,
    languages: Sequence[Sequence[str]] = (),
    groups: Sequence[Sequence[str]] = (),
) -> list[dict[str, Any]]:
    """Three boxes in villages of the alert's county, two in another county; ``languages``
    are those of the first boxes, in order (the registry's default otherwise), ``groups``
    the group areas of the first boxes (none: boxes that know only their own key)."""
    targets = []
    for index, division in enumerate(IN_COUNTY + ELSEWHERE):
        params: dict[str, Any] = {"serial_address": index + 1} if transport == "serial" else {}
        target = {
            "id": f"spk-{division}",
            "channel": "loudspeaker",
            "name": f"村{index}大喇叭",
            "division": division,
            "address": f"box-{division}",
            "params": params,
        }
        if index < len(languages):
            target["languages"] = list(languages[index])
        if index < len(groups) and groups[index]:
            params["group_areas"] = list(groups[index])
        targets.append(target)
    return targets


class HeldRender:
    """Holds ``audio``'s renders until ``gate`` opens (a real render then runs); while
    ``fail`` is set they fail instead."""

    def __init__(self, audio: AudioPublisher) -> None:
        self.gate = asyncio.Event()
        self.fail = False
        render = audio.render_programme

        async def held(
            message: AlertMessage,
            profile: str | ChannelProfile,
            languages: Sequence[str] = ("zh-CN",),
            same_header: str | None = None,
        ) -> Render:
            await self.gate.wait()
            if self.fail:
                raise AudioError("the speech engine crashed")
            return await render(message, profile, languages, same_header)

        audio.render_programme = held  # type: ignore[method-assign]


@dataclass
class SpeakerSystem:
    """The service, its loudspeaker channel and the simulated boxes; ``restart`` stops the
    server and starts a new one on the same data directory and ports."""

    service: BroadcasterService
    channel: LoudspeakerChannel
    fleet: SpeakerFleetSimulator
    box_ids: list[str]
    restart: Callable[[], Awaitable[None]]

    @property
    def county_boxes(self) -> set[str]:
        return {f"box-{d}" for d in IN_COUNTY}

    def played(self, alert_key: str) -> dict[str, int]:
        """Completed playbacks of an alert per box."""
        counts: dict[str, int] = {}
        for record in self.fleet.log.completed(alert_id=alert_key):
            counts[record.request.box_id] = counts.get(record.request.box_id, 0) + 1
        return counts

    async def wait_playing(self, alert_key: str, boxes: set[str], within_s: float = 20.0) -> None:
        """Wait until every box of ``boxes`` is playing ``alert_key`` now."""

        def playing(records: list[Any]) -> bool:
            now = {
                r.request.box_id
                for r in records
                if r.request.alert_id == alert_key and r.ended_at is None
            }
            return boxes <= now

        await self.fleet.log.wait_for(playing, within_s)

    async def wait_stopped(self, alert_key: str, within_s: float) -> None:
        """Wait until no box plays ``alert_key`` any more (each playback of it has ended)."""

        def all_stopped(records: list[Any]) -> bool:
            mine = [r for r in records if r.request.alert_id == alert_key]
            return all(r.ended_at is not None for r in mine)

        await self.fleet.log.wait_for(all_stopped, within_s)


def hub_table(
    transport: str, stack: AsyncExitStack, tmp_path: Path, cluster: NatsMqttCluster | None = None
) -> tuple[dict[str, Any], str]:
    """The channel's transport settings and the URL the boxes use."""
    if cluster is not None:
        # The server starts on the second node, the boxes on the first.
        brokers = [f"mqtt://{h}:{p}" for h, p in cluster.addresses[1:] + cluster.addresses[:1]]
        mqtt = {"brokers": brokers, "publish_sessions": 2}
        return {"mqtt": mqtt, "default_transport": "mqtt"}, cluster.url()
    if transport == "tcp":
        port = free_port()  # fixed, so the boxes find a restarted server
        return {"tcp": {"host": "127.0.0.1", "port": port}}, f"tcp://127.0.0.1:{port}"
    if transport == "serial":
        modem = NullModem()
        stack.callback(modem.close)
        line = {
            "name": "line",
            "url": modem.path_a,
            "reply_timeout_seconds": 0.1,
            "poll_interval_seconds": 0.05,
        }
        return {"serial_lines": [line], "default_transport": "serial"}, f"serial://{modem.path_b}"
    broker = stack.enter_context(MosquittoBroker(tmp_path))
    table = {"mqtt": {"host": broker.host, "port": broker.port}, "default_transport": "mqtt"}
    return table, f"mqtt://{broker.host}:{broker.port}"


def system_config(
    tmp_path: Path, channel: dict[str, Any], targets: list[dict[str, Any]], public_url: str
) -> Config:
    config = make_config(tmp_path, {"loudspeaker": channel}, targets, confirm_timeout_seconds=30)
    server = config.server.model_copy(update={"public_url": public_url})
    audio = AudioConfig(engine_order=("espeak-ng",))
    return config.model_copy(update={"server": server, "audio": audio})


@asynccontextmanager
async def speaker_system(
    tmp_path: Path,
    transport: str = "tcp",
    *,
    play_seconds: float = 0.05,
    public_url: str | None = None,
    impostors: frozenset[str] = frozenset(),
    languages: Sequence[Sequence[str]] = (),
    groups: Sequence[Sequence[str]] = (),
    cluster: NatsMqttCluster | None = None,
    command_delay_s: float = 0.0,
    ignore_acks: bool = False,
    command_qos: int = 1,
    **settings: Any,
) -> AsyncIterator[SpeakerSystem]:
    """A running server with the channel on ``transport`` and five connected boxes.

    ``public_url`` overrides the URL the boxes download from (to make downloads fail);
    ``impostors`` are boxes whose key the server does not know: they never count as online;
    ``languages`` and ``groups`` are those of the first boxes (``box_targets``, whose group
    areas' keys the simulated boxes hold and whose topics they follow); with ``cluster``, the
    server and the boxes meet at its nodes over MQTT; ``command_delay_s``: each box handles
    each command that late; ``ignore_acks`` runs boxes that predate the ``acks`` member of
    commands (they acknowledge every stage); ``command_qos``: of the boxes' MQTT
    subscriptions.
    """
    async with AsyncExitStack() as stack:
        table, box_url = hub_table(transport, stack, tmp_path, cluster)
        targets = box_targets(transport, languages, groups)
        channel_table = {
            "type": "loudspeaker",
            "concurrency": 64,
            "master_secret": SECRET,
            "repeat": 1,
            "clips": {"default": FALLBACK_CLIP},
        }
        port = free_port()
        url = public_url or f"http://127.0.0.1:{port}"
        config = system_config(tmp_path, channel_table | table | settings, targets, url)
        servers: list[TestServer] = []

        async def serve() -> tuple[BroadcasterService, LoudspeakerChannel]:
            service = BroadcasterService(config)
            server = TestServer(make_app(service), host="127.0.0.1", port=port)
            await server.start_server()
            servers.append(server)
            channel = service.channels["loudspeaker"]
            assert isinstance(channel, LoudspeakerChannel) and channel.hub is not None
            return service, channel

        async def restart() -> None:
            await servers.pop().close()
            system.service, system.channel = await serve()

        service, channel = await serve()
        stack.push_async_callback(lambda: servers.pop().close())
        box_ids = [str(t["address"]) for t in targets]
        work = tmp_path / "boxes"
        (work / "clips").mkdir(parents=True)
        (work / "clips" / "generic").write_bytes(FALLBACK)
        fleet = SpeakerFleetSimulator(
            RegistryFleetConfig(
                url=box_url,
                fleet_secret=SECRET.encode(),
                boxes=len(box_ids),
                areas=tuple(sorted({str(t["division"]) for t in targets})),
                work_dir=work,
                persist_journals=True,
                play_seconds=play_seconds,
                box_ids=tuple(box_ids),
                box_areas=tuple(str(t["division"]) for t in targets),
                box_group_areas=tuple(tuple(t["params"].get("group_areas", ())) for t in targets),
                command_delay_s=command_delay_s,
                ignore_acks=ignore_acks,
                command_qos=command_qos,
            )
        )
        await fleet.start()
        stack.push_async_callback(fleet.stop)
        await channel.wait_online([b for b in box_ids if b not in impostors], within_s=15)
        system = SpeakerSystem(service, channel, fleet, box_ids, restart)
        yield system


@pytest.fixture(params=["tcp", "serial", "mqtt"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)
