"""The relay over mutual TLS to a county node that requires a client certificate, with the
alert signed by the city's key: the county takes it and records the valid signature; without
the client certificate the county cannot be reached (retried)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from broadcaster.api.app import make_app
from broadcaster.cap import AlertSigner
from broadcaster.channel import ChannelContext, SendOutcome
from broadcaster.delivery import Target
from broadcaster.errors import RetryableError
from broadcaster.service import BroadcasterService
from broadcaster.testing.contract import contract_delivery
from channels.relay import RelayChannel, RelayChannelConfig
from tests.core.support import make_config, village_targets
from tests.relay.test_relay_contract import COUNTY_TOKEN, closed_port
from tests.signing import key_and_cert, loopback_tls_files

NODE = Target(id="node-150921", channel="relay", name="卓资县 county node")


@pytest_asyncio.fixture
async def county(tmp_path: Path) -> AsyncIterator[tuple[str, BroadcasterService, Path]]:
    """A county node serving HTTPS on loopback that requires a client certificate; yields its
    URL, its service and the folder holding its and the city's certificates."""
    tls = tmp_path / "tls"
    (tls / "county").mkdir(parents=True)
    (tls / "city").mkdir()
    server_cert, server_key, _ = loopback_tls_files(tls / "county")
    client_cert, _client_key, _ = loopback_tls_files(tls / "city")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_cert))
    context.load_cert_chain(str(server_cert), str(server_key))
    context.verify_mode = ssl.CERT_REQUIRED
    (tmp_path / "county").mkdir()
    config = make_config(tmp_path / "county", {"log": {"type": "log"}}, village_targets("log", 2))
    tokens = [{"name": "city", "token": COUNTY_TOKEN}]
    config = config.model_copy(update={"api": config.api.model_validate({"tokens": tokens})})
    service = BroadcasterService(config)
    runner = web.AppRunner(make_app(service))
    await runner.setup()
    port = closed_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    yield f"https://127.0.0.1:{port}", service, tls
    await runner.cleanup()


def _relay(tmp_path: Path, node: dict[str, object]) -> RelayChannel:
    key_pem, cert_pem, _ = key_and_cert()
    context = ChannelContext(
        data_dir=tmp_path,
        sender_name="乌兰察布市应急管理局",
        public_url="http://127.0.0.1:1",
        signer=AlertSigner.from_pem(key_pem, cert_pem),
    )
    table = {"type": "relay", "nodes": [{"division": "150921", "token": COUNTY_TOKEN} | node]}
    return RelayChannel("relay", RelayChannelConfig.model_validate(table), context)


@pytest.mark.asyncio
async def test_signed_cap_over_mutual_tls(
    tmp_path: Path, county: tuple[str, BroadcasterService, Path]
) -> None:
    url, service, tls = county
    node = {
        "url": url,
        "ca": str(tls / "county" / "loopback.crt"),
        "client_cert": str(tls / "city" / "loopback.crt"),
        "client_key": str(tls / "city" / "loopback.key"),
    }
    assert RelayChannel.preflight("relay", _relay(tmp_path, node).config, tmp_path) == []
    channel = _relay(tmp_path, node)
    await channel.start()
    try:
        result = await channel.send(contract_delivery(NODE))
        assert result.outcome is SendOutcome.ACCEPTED and result.content is not None
        assert result.content["signed"] is True
        record = await service.store.alerts.get(str(result.provider_ref))
        assert record is not None
        signature = [e["detail"] for e in record["events"] if e["event"] == "signature"]
        assert signature and signature[0].startswith("signature valid"), record["events"]
    finally:
        await channel.stop()

    without = _relay(tmp_path, {"url": url, "ca": node["ca"]})
    await without.start()
    try:
        with pytest.raises(RetryableError, match="unreachable"):
            await without.send(contract_delivery(NODE, delivery_id=2))
    finally:
        await without.stop()


def test_preflight_names_tls_files_it_cannot_use(tmp_path: Path) -> None:
    channel = _relay(
        tmp_path,
        {"url": "https://127.0.0.1:1", "client_cert": str(tmp_path / "none.pem")},
    )
    problems = RelayChannel.preflight("relay", channel.config, tmp_path)
    assert problems == [
        "nodes[0]: client_cert and client_key go together",
        f"nodes[0].client_cert: cannot read {tmp_path / 'none.pem'}",
    ]
