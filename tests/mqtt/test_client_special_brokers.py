"""MqttClient against Mosquitto set up for the cases a plain broker cannot show: a broker that
dies under a pending publish, passwords, and TLS with a self-signed certificate."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from drivers.mqtt import MqttClient, MqttConnectionError, MqttRefusedError
from drivers.mqtt.testing import MosquittoBroker, password_listener
from tests.signing import loopback_tls_files


async def test_a_killed_broker_fails_the_pending_publish_and_wait_closed(tmp_path: Path) -> None:
    with MosquittoBroker(tmp_path) as broker:
        client = MqttClient(broker.host, broker.port, "box-k", keepalive_s=30)
        await client.connect()
        await client.publish("before", b"acked", qos=1)
        broker.freeze()
        pending = asyncio.ensure_future(client.publish("during", b"never acked", qos=1))
        closed = asyncio.ensure_future(client.wait_closed())
        done, _ = await asyncio.wait([pending, closed], timeout=0.2)
        assert not done
        broker.kill()
        with pytest.raises(MqttConnectionError, match="lost"):
            await asyncio.wait_for(pending, 5)
        with pytest.raises(MqttConnectionError, match="lost"):
            await asyncio.wait_for(closed, 5)
        assert not client.is_connected
        with pytest.raises(MqttConnectionError, match="not connected"):
            await client.publish("after", b"x", qos=1)


@pytest.fixture
def secured_broker(tmp_path: Path) -> MosquittoBroker:
    return MosquittoBroker(tmp_path, password_listener(tmp_path, {"box-user": "box-pass"}))


@pytest.mark.parametrize(
    ("username", "password"), [(None, None), ("box-user", "wrong"), ("nobody", "box-pass")]
)
async def test_missing_or_wrong_credentials_are_refused(
    secured_broker: MosquittoBroker, username: str | None, password: str | None
) -> None:
    with secured_broker as broker:
        client = MqttClient(broker.host, broker.port, "box-x", username=username, password=password)
        with pytest.raises(MqttRefusedError, match="not authorised") as refused:
            await client.connect()
        assert refused.value.return_code == 5
        with pytest.raises(MqttRefusedError):
            await client.wait_closed()


async def test_right_credentials_connect(
    secured_broker: MosquittoBroker,
) -> None:
    with secured_broker as broker:
        client = MqttClient(
            broker.host, broker.port, "box-y", username="box-user", password="box-pass"
        )
        assert await client.connect() is False
        try:
            assert await client.subscribe([("boxes/y/cmd", 1)]) == [1]
            await client.publish("boxes/y/ack", b"ok", qos=1)
        finally:
            await client.disconnect()


async def test_tls_with_a_trusted_self_signed_certificate(tmp_path: Path) -> None:
    cert_file, key_file, cert_pem = loopback_tls_files(tmp_path)
    trusting = ssl.create_default_context(cadata=cert_pem.decode())
    with MosquittoBroker(
        tmp_path, f"allow_anonymous true\ncertfile {cert_file}\nkeyfile {key_file}\n"
    ) as broker:
        inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        listener = MqttClient(
            broker.host,
            broker.port,
            "tls-listener",
            tls_context=trusting,
            on_message=lambda topic, payload, retain: inbox.put_nowait((topic, payload)),
        )
        sender = MqttClient(broker.host, broker.port, "tls-sender", tls_context=trusting)
        await listener.connect()
        await sender.connect()
        try:
            await listener.subscribe([("secure/#", 1)])
            await sender.publish("secure/alert", b"over TLS", qos=1)
            assert await asyncio.wait_for(inbox.get(), 5) == ("secure/alert", b"over TLS")
        finally:
            await sender.disconnect()
            await listener.disconnect()
        stranger = MqttClient(
            broker.host, broker.port, "tls-stranger", tls_context=ssl.create_default_context()
        )
        with pytest.raises(MqttConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await stranger.connect()
