"""The hub's own duties: authenticating boxes, refusing spoofed or unknown input, presence,
TLS, and serial lines with noise or silent boxes."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.mqtt import MqttClient
from drivers.speaker.codec import encode_box_message
from drivers.speaker.errors import (
    BoxOfflineError,
    SpeakerConfigError,
    SpeakerConnectionError,
    SpeakerTimeoutError,
    UnknownBoxError,
)
from drivers.speaker.hub import (
    BoxRegistration,
    MqttBrokerConfig,
    SpeakerHub,
    SpeakerHubConfig,
    TcpListenConfig,
)
from drivers.speaker.hub_serial import SerialLineConfig
from drivers.speaker.link_url import server_tls_context
from drivers.speaker.messages import AckStage, BoxAck, BoxHello, BoxStatus, Stop
from drivers.speaker.simulator import FleetSimulatorConfig, SpeakerFleetSimulator
from drivers.speaker.tcp_options import enable_keepalive
from drivers.speaker.testing import HubEventRecorder, MosquittoBroker, NullModem, free_port
from drivers.speaker.topics import SpeakerTopics
from drivers.speaker.uplinks import SerialBoxLine
from tests.signing import loopback_tls_files

SECRET = b"hub-test-fleet-secret-0123456789"
KEY = b"k" * 32


@pytest.fixture
async def tcp_hub() -> AsyncIterator[SpeakerHub]:
    hub = SpeakerHub(
        SpeakerHubConfig(tcp=TcpListenConfig(host="127.0.0.1", port=0, hello_timeout_s=0.3)),
        [BoxRegistration(box_id="b1", key=KEY, transport="tcp")],
    )
    async with hub:
        yield hub


async def _exchange(port: int, lines: list[bytes]) -> bytes:
    """Connect, send lines, and read until the hub closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for line in lines:
        writer.write(line + b"\n")
    try:
        async with asyncio.timeout(3):
            return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


def hello(box_id: str = "b1", key: bytes = KEY, at: dt.datetime | None = None) -> bytes:
    at = at or dt.datetime.now(dt.UTC)
    return encode_box_message(BoxHello(box_id=box_id, at=at, nonce="01", firmware="f"), key)


@pytest.mark.parametrize(
    "first_line",
    [
        hello(key=b"x" * 32),
        hello(box_id="stranger"),
        hello(at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)),
        b"GET / HTTP/1.1",
        b"x" * 70_000,
    ],
    ids=["wrong-key", "unknown-box", "stale", "not-json", "too-long"],
)
async def test_bad_hellos_are_refused(tcp_hub: SpeakerHub, first_line: bytes) -> None:
    assert await _exchange(tcp_hub.tcp_port, [first_line]) == b""
    assert tcp_hub.online_boxes() == frozenset()


async def test_silent_connection_is_closed_after_the_hello_timeout(tcp_hub: SpeakerHub) -> None:
    assert await _exchange(tcp_hub.tcp_port, []) == b""


async def test_messages_are_verified_and_spoofing_is_counted(tcp_hub: SpeakerHub) -> None:
    recorder = HubEventRecorder(tcp_hub)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    good = BoxAck(box_id="b1", cmd_id="c", alert_id="a", stage=AckStage.STARTED, at=now)
    spoof = BoxAck(box_id="b2", cmd_id="c", alert_id="a", stage=AckStage.FINISHED, at=now)
    _, writer = await asyncio.open_connection("127.0.0.1", tcp_hub.tcp_port)
    writer.write(hello() + b"\n")
    writer.write(encode_box_message(spoof, KEY) + b"\n")
    writer.write(encode_box_message(good, b"y" * 32) + b"\n")
    writer.write(b"{garbage\n")
    writer.write(encode_box_message(good, KEY) + b"\n")
    try:
        await recorder.wait_for(lambda: bool(recorder.acks()))
        assert recorder.acks() == [good]
        assert recorder.presence("b1") == [True]
        assert tcp_hub.stats.messages_rejected == 3
        writer.close()
        await writer.wait_closed()
        await recorder.wait_for(lambda: recorder.presence("b1") == [True, False])
    finally:
        await recorder.close()


async def test_unknown_and_offline_boxes_raise(tcp_hub: SpeakerHub) -> None:
    now = dt.datetime.now(dt.UTC)
    stop = Stop(cmd_id="c", alert_id="a", issued_at=now, expires_at=now)
    with pytest.raises(UnknownBoxError):
        await tcp_hub.send_command("nobody", stop)
    with pytest.raises(BoxOfflineError):
        await tcp_hub.send_command("b1", stop)
    with pytest.raises(SpeakerConfigError):
        await tcp_hub.send_area_command("150902", stop)


async def test_send_each_writes_each_box_its_own_bytes_and_names_each_failure(
    tcp_hub: SpeakerHub,
) -> None:
    recorder = HubEventRecorder(tcp_hub)
    offline = await tcp_hub.send_each([("b1", b"early")])
    assert [type(error) for error in offline] == [BoxOfflineError]
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp_hub.tcp_port)
    writer.write(hello() + b"\n")
    try:
        await recorder.wait_for(lambda: recorder.presence("b1") == [True])
        errors = await tcp_hub.send_each([("b1", b"one"), ("nobody", b"x"), ("b1", b"two")])
        assert errors[0] is None and errors[2] is None
        assert isinstance(errors[1], UnknownBoxError)
        async with asyncio.timeout(3):
            assert await reader.readexactly(8) == b"one\ntwo\n"
    finally:
        writer.close()
        await writer.wait_closed()
        await recorder.close()


def test_registration_errors() -> None:
    hub = SpeakerHub(SpeakerHubConfig())
    with pytest.raises(SpeakerConfigError, match="TCP"):
        hub.register(BoxRegistration(box_id="b", key=KEY, transport="tcp"))
    with pytest.raises(SpeakerConfigError, match="line"):
        hub.register(BoxRegistration(box_id="b", key=KEY, transport="serial"))
    with pytest.raises(SpeakerConfigError, match="16 bytes"):
        BoxRegistration(box_id="b", key=b"short", transport="tcp")
    with pytest.raises(SpeakerConfigError, match="box id"):
        BoxRegistration(box_id="a/b", key=KEY, transport="mqtt")
    with pytest.raises(SpeakerConfigError, match="area codes"):
        BoxRegistration(box_id="b", key=KEY, transport="mqtt", areas=frozenset({"15+"}))
    with pytest.raises(SpeakerConfigError, match="area codes"):
        MqttBrokerConfig(area_keys={"a/#": KEY})
    with pytest.raises(SpeakerConfigError, match="prefix"):
        MqttBrokerConfig(prefix="warn/#")


async def test_unreachable_broker_and_busy_port_are_connection_errors() -> None:
    config = SpeakerHubConfig(mqtt=MqttBrokerConfig(port=free_port(), connect_timeout_s=0.5))
    with pytest.raises(SpeakerConnectionError, match="cannot reach localhost"):
        await SpeakerHub(config).start()
    async with SpeakerHub(SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0))) as first:
        taken = TcpListenConfig("127.0.0.1", first.tcp_port)
        with pytest.raises(SpeakerConnectionError, match="listen"):
            await SpeakerHub(SpeakerHubConfig(tcp=taken)).start()


async def test_boxes_connect_over_tls(tmp_path: Path) -> None:
    cert, key, _ = loopback_tls_files(tmp_path)
    with pytest.raises(SpeakerConfigError, match="certificate"):
        server_tls_context(key, key)
    context = server_tls_context(cert, key)
    hub = SpeakerHub(SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0, ssl_context=context)))
    async with hub:
        fleet = SpeakerFleetSimulator(
            FleetSimulatorConfig(
                url=f"tls://127.0.0.1:{hub.tcp_port}",
                fleet_secret=SECRET,
                boxes=2,
                work_dir=tmp_path / "fleet",
                ca_file=cert,
            )
        )
        for registration in fleet.registrations("tcp"):
            hub.register(registration)
        recorder = HubEventRecorder(hub)
        await fleet.start()
        try:
            await fleet.wait_connected(5)
            await recorder.wait_for(lambda: len(hub.online_boxes()) == 2)
            await recorder.wait_for(
                lambda: (
                    {e.box_id for e in recorder.events if isinstance(e, BoxStatus)}
                    == {b.box_id for b in fleet.boxes}
                )
            )
        finally:
            await fleet.stop()
            await recorder.close()


async def test_serial_line_survives_noise_and_reports_silent_boxes(
    tmp_path: Path, null_modem: NullModem
) -> None:
    line = SerialLineConfig(
        name="l", url=null_modem.path_a, reply_timeout_s=0.05, poll_interval_s=0.02, retries=1
    )
    hub = SpeakerHub(SpeakerHubConfig(serial_lines=(line,)))
    fleet = SpeakerFleetSimulator(
        FleetSimulatorConfig(
            url=f"serial://{null_modem.path_b}", fleet_secret=SECRET, boxes=2, work_dir=tmp_path
        )
    )
    registrations = fleet.registrations("serial", serial_line="l")
    silent = BoxRegistration(
        box_id="silent", key=KEY, transport="serial", serial_line="l", serial_address=99
    )
    for registration in [*registrations, silent]:
        hub.register(registration)
    async with hub:
        recorder = HubEventRecorder(hub)
        await fleet.start()
        try:
            null_modem.inject_towards_b(b"\x7e\x01\x05\x01\xff\xff" + bytes(range(256)))
            await recorder.wait_for(lambda: len(hub.online_boxes()) == 2)
            assert "silent" not in hub.online_boxes()
            now = dt.datetime.now(dt.UTC)
            stop = Stop(cmd_id="s", alert_id="*", issued_at=now, expires_at=now + dt.timedelta(60))
            with pytest.raises(BoxOfflineError):
                await hub.send_command("silent", stop)
            box = registrations[0].box_id
            await hub.send_command(box, stop)
            await recorder.wait_acks("s", AckStage.FINISHED, {box})
        finally:
            await fleet.stop()
            await recorder.close()
    assert isinstance(SpeakerTimeoutError("x"), TimeoutError)


async def test_a_failing_serial_port_takes_its_boxes_offline(tmp_path: Path) -> None:
    modem = NullModem()
    line = SerialLineConfig(name="l", url=modem.path_a, reply_timeout_s=0.05, poll_interval_s=0.02)
    fleet = SpeakerFleetSimulator(
        FleetSimulatorConfig(
            url=f"serial://{modem.path_b}", fleet_secret=SECRET, boxes=1, work_dir=tmp_path
        )
    )
    box = fleet.boxes[0]
    hub = SpeakerHub(SpeakerHubConfig(serial_lines=(line,)), fleet.registrations("serial", "l"))
    box_line = SerialBoxLine(modem.path_b, {1: box.agent})
    loop = asyncio.get_running_loop()
    async with hub:
        recorder = HubEventRecorder(hub)
        tasks = [loop.create_task(box.agent.run()), loop.create_task(box_line.run())]
        try:
            await recorder.wait_for(lambda: hub.online_count == 1)
            modem.close()
            with pytest.raises(SpeakerConnectionError, match="failed"):
                async with asyncio.timeout(5):
                    await tasks[1]
            await recorder.wait_for(lambda: recorder.presence(box.box_id) == [True, False])
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await recorder.close()


async def test_a_box_that_misses_its_heartbeats_is_dropped() -> None:
    hub = SpeakerHub(
        SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0), heartbeat_timeout_s=0.4),
        [BoxRegistration(box_id="b1", key=KEY, transport="tcp")],
    )
    async with hub:
        recorder = HubEventRecorder(hub)
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.tcp_port)
        try:
            writer.write(hello() + b"\n")
            await recorder.wait_for(lambda: recorder.presence("b1") == [True])
            async with asyncio.timeout(3):
                assert await reader.read() == b""
            assert recorder.presence("b1") == [True, False]
        finally:
            writer.close()
            await writer.wait_closed()
            await recorder.close()


async def test_unregistering_or_rekeying_a_box_closes_its_connection(tcp_hub: SpeakerHub) -> None:
    recorder = HubEventRecorder(tcp_hub)
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp_hub.tcp_port)
    try:
        writer.write(hello() + b"\n")
        await recorder.wait_for(lambda: tcp_hub.online_count == 1)
        tcp_hub.register(BoxRegistration(box_id="b1", key=b"n" * 32, transport="tcp"))
        async with asyncio.timeout(3):
            assert await reader.read() == b""
        assert tcp_hub.online_count == 0 and recorder.presence("b1") == [True, False]
        tcp_hub.unregister("b1")
        with pytest.raises(UnknownBoxError):
            await tcp_hub.send_command("b1", Stop(cmd_id="c", alert_id="a", **_times()))
    finally:
        writer.close()
        await writer.wait_closed()
        await recorder.close()


def _times() -> dict[str, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    return {"issued_at": now, "expires_at": now + dt.timedelta(minutes=1)}


async def test_boxes_reconnect_when_the_hub_comes_back(tmp_path: Path) -> None:
    first = SpeakerHub(SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", 0)))
    await first.start()
    port = first.tcp_port
    fleet = SpeakerFleetSimulator(
        FleetSimulatorConfig(
            url=f"tcp://127.0.0.1:{port}", fleet_secret=SECRET, boxes=2, work_dir=tmp_path
        )
    )
    registrations = fleet.registrations("tcp")
    for registration in registrations:
        first.register(registration)
    await fleet.start()
    try:
        await fleet.wait_connected(5)
        await first.stop()
        second = SpeakerHub(SpeakerHubConfig(tcp=TcpListenConfig("127.0.0.1", port)), registrations)
        async with second:
            recorder = HubEventRecorder(second)
            try:
                await recorder.wait_for(lambda: second.online_count == 2, 10)
            finally:
                await recorder.close()
    finally:
        await fleet.stop()


async def test_tcp_links_probe_dead_paths_within_a_minute(tcp_hub: SpeakerHub) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", tcp_hub.tcp_port)
    try:
        sock = writer.get_extra_info("socket")
        enable_keepalive(sock)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 60_000
    finally:
        writer.close()
        await writer.wait_closed()


async def test_serial_boxes_repeat_their_latest_acks_to_a_restarted_master(
    tmp_path: Path, null_modem: NullModem
) -> None:
    line = SerialLineConfig(name="l", url=null_modem.path_a, reply_timeout_s=0.1)
    fleet = SpeakerFleetSimulator(
        FleetSimulatorConfig(
            url=f"serial://{null_modem.path_b}", fleet_secret=SECRET, boxes=1, work_dir=tmp_path
        )
    )
    registrations = fleet.registrations("serial", serial_line="l")
    box = registrations[0].box_id
    await fleet.start()
    try:
        async with SpeakerHub(SpeakerHubConfig(serial_lines=(line,)), registrations) as first:
            recorder = HubEventRecorder(first)
            try:
                await recorder.wait_for(lambda: first.online_count == 1)
                await first.send_command(box, Stop(cmd_id="s1", alert_id="a", **_times()))
                await recorder.wait_acks("s1", AckStage.FINISHED, {box})
            finally:
                await recorder.close()
        # The acks the first master took died with it; the new one asks for them again.
        async with SpeakerHub(SpeakerHubConfig(serial_lines=(line,)), registrations) as second:
            recorder = HubEventRecorder(second)
            try:
                await recorder.wait_acks("s1", AckStage.FINISHED, {box})
                await recorder.wait_for(
                    lambda: any(isinstance(e, BoxStatus) for e in recorder.events)
                )
            finally:
                await recorder.close()
    finally:
        await fleet.stop()


async def test_mqtt_presence_counts_only_when_signed(mosquitto: MosquittoBroker) -> None:
    hub = SpeakerHub(
        SpeakerHubConfig(mqtt=MqttBrokerConfig(host=mosquitto.host, port=mosquitto.port)),
        [BoxRegistration(box_id="b1", key=KEY, transport="mqtt")],
    )
    topics = SpeakerTopics()
    async with hub:
        recorder = HubEventRecorder(hub)
        other = MqttClient(mosquitto.host, mosquitto.port, "not-the-box")
        await other.connect()
        try:
            # Anyone may publish to the topic: a plain "online" or a forged hello is refused;
            # the box's signed hello, which the broker delivers after them, is taken.
            for forged in (b"online", hello(key=b"x" * 32)):
                await other.publish(topics.presence("b1"), forged, qos=1, retain=True)
            await other.publish(topics.presence("b1"), hello(), qos=1, retain=True)
            await recorder.wait_for(lambda: recorder.presence("b1") == [True])
            assert hub.stats.messages_rejected == 2
            await other.publish(topics.presence("b1"), b"offline", qos=1, retain=True)
            await recorder.wait_for(lambda: recorder.presence("b1") == [True, False])
        finally:
            await other.disconnect()
            await recorder.close()


async def test_acks_sent_while_the_server_is_away_reach_it_when_it_returns(
    mosquitto: MosquittoBroker,
) -> None:
    config = SpeakerHubConfig(mqtt=MqttBrokerConfig(host=mosquitto.host, port=mosquitto.port))
    boxes = [BoxRegistration(box_id="b1", key=KEY, transport="mqtt")]
    async with SpeakerHub(config, boxes):
        pass
    ack = BoxAck(
        box_id="b1",
        cmd_id="c9",
        alert_id="a9",
        stage=AckStage.FINISHED,
        at=dt.datetime.now(dt.UTC),
    )
    box = MqttClient(mosquitto.host, mosquitto.port, "box-b1")
    await box.connect()
    await box.publish(SpeakerTopics().box_messages("b1"), encode_box_message(ack, KEY), qos=1)
    await box.disconnect()
    async with SpeakerHub(config, boxes) as hub:
        recorder = HubEventRecorder(hub)
        try:
            await recorder.wait_acks("c9", AckStage.FINISHED, {"b1"})
        finally:
            await recorder.close()


async def test_mqtt_boxes_go_offline_with_the_broker_and_return_with_it(tmp_path: Path) -> None:
    broker = MosquittoBroker(tmp_path).__enter__()
    port = broker.port
    config = SpeakerHubConfig(mqtt=MqttBrokerConfig(host=broker.host, port=port))
    fleet = SpeakerFleetSimulator(
        FleetSimulatorConfig(
            url=f"mqtt://{broker.host}:{port}", fleet_secret=SECRET, boxes=2, work_dir=tmp_path
        )
    )
    ids = {b.box_id for b in fleet.boxes}
    try:
        async with SpeakerHub(config, fleet.registrations("mqtt")) as hub:
            recorder = HubEventRecorder(hub)
            await fleet.start()
            try:
                await recorder.wait_for(lambda: hub.online_boxes() == ids)
                broker.kill()
                # The server cannot reach them any more: the screen must not say online.
                await recorder.wait_for(lambda: hub.online_count == 0)
                with pytest.raises(SpeakerConnectionError):
                    await hub.send_command(min(ids), Stop(cmd_id="s", alert_id="a", **_times()))
                broker.__exit__(None, None, None)
                broker = MosquittoBroker(tmp_path, port=port).__enter__()
                await recorder.wait_for(lambda: hub.online_boxes() == ids, 40)
                box = min(ids)
                await hub.send_command(box, Stop(cmd_id="s2", alert_id="a", **_times()))
                await recorder.wait_acks("s2", AckStage.FINISHED, {box})
            finally:
                await fleet.stop()
                await recorder.close()
    finally:
        broker.__exit__(None, None, None)
