"""Fixtures for the ebplatform channel: SM2 identities made with ``broadcaster ebd keygen``, the
county platforms as simulators over real HTTP, and the server (service + web app) on a port of
its own, so the platforms can push state to its inbound endpoint."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from broadcaster.api.app import make_app
from broadcaster.cli import main as broadcaster_main
from broadcaster.config import parse_config
from broadcaster.service import BroadcasterService
from drivers.ebd import Sm2Signer, Sm2Verifier, TrustList, load_certificate, load_private_key
from drivers.ebd.simulator import EbdPlatformSimulator, PlatformBehaviour
from drivers.ebd.testing import CITY_PLATFORM_EBRID

ZHUOZI, HUADE = "150921000000", "150922000000"
ZHUOZI_EBRID = "41509210000000101010101"
HUADE_EBRID = "41509220000000101010101"
UPPER_EBRID = "21500000000000101010101"
OURS = CITY_PLATFORM_EBRID


@dataclass(frozen=True)
class Identity:
    """Key, certificate and certificate id of one platform, as keygen wrote them."""

    ebrid: str
    key: Path
    cert: Path

    @property
    def cert_id(self) -> str:
        return load_certificate(self.cert).cert_id.hex()

    def signer(self) -> Sm2Signer:
        return Sm2Signer(load_private_key(self.key), bytes.fromhex(self.cert_id))


@dataclass(frozen=True)
class Pki:
    ours: Identity
    zhuozi: Identity
    huade: Identity
    upper: Identity
    trust: Path
    """The folder of certificates our channel trusts: the counties' and the upper platform's."""

    def verifier_of_ours(self) -> Sm2Verifier:
        return Sm2Verifier(TrustList([load_certificate(self.ours.cert)]))


def keygen(folder: Path, ebrid: str) -> Identity:
    assert broadcaster_main(["ebd", "keygen", "--out", str(folder), "--ebrid", ebrid]) == 0
    return Identity(ebrid, folder / "key.pem", folder / "cert.pem")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("ebd-pki")
    ids = {
        name: keygen(root / name, ebrid)
        for name, ebrid in (
            ("ours", OURS), ("zhuozi", ZHUOZI_EBRID), ("huade", HUADE_EBRID), ("upper", UPPER_EBRID)
        )
    }  # fmt: skip
    trust = root / "trust"
    trust.mkdir()
    for name in ("zhuozi", "huade", "upper"):
        shutil.copy(ids[name].cert, trust / f"{name}.pem")
    return Pki(**ids, trust=trust)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def county_platforms(
    pki: Pki, **behaviour: Any
) -> AsyncIterator[dict[str, EbdPlatformSimulator]]:
    """The two county platforms, answering as deployed platforms do."""
    sims = {
        "zhuozi": EbdPlatformSimulator(
            ZHUOZI_EBRID,
            pki.zhuozi.signer(),
            pki.verifier_of_ours(),
            PlatformBehaviour(**behaviour),
        ),
        "huade": EbdPlatformSimulator(
            HUADE_EBRID, pki.huade.signer(), pki.verifier_of_ours(), PlatformBehaviour(**behaviour)
        ),
    }
    for sim in sims.values():
        await sim.start()
    try:
        yield sims
    finally:
        for sim in sims.values():
            await sim.stop()


def channel_table(pki: Pki, peers: dict[str, str], **extra: Any) -> dict[str, Any]:
    """The ``[channels.eb]`` table: our identity, the trust folder and the two county peers."""
    areas = {"zhuozi": ZHUOZI, "huade": HUADE}
    ebrids = {"zhuozi": ZHUOZI_EBRID, "huade": HUADE_EBRID}
    certs = {"zhuozi": pki.zhuozi.cert_id, "huade": pki.huade.cert_id}
    return {
        "type": "ebplatform",
        "local_ebrid": OURS,
        "sender_name": "乌兰察布市突发事件预警信息发布中心",
        "signing_key_file": str(pki.ours.key),
        "cert_id": pki.ours.cert_id,
        "trust": [str(pki.trust)],
        "peers": [
            {
                "name": name,
                "ebrid": ebrids[name],
                "cert_id": certs[name],
                "url": url,
                "areas": [areas[name][:6]],
            }
            for name, url in peers.items()
        ],
    } | extra


@asynccontextmanager
async def server(
    tmp_path: Path,
    channels: dict[str, Any],
    targets: list[dict[str, Any]] | None = None,
    port: int | None = None,
    store: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[BroadcasterService, str]]:
    """The service with its web app on a loopback port (a free one unless given), on the
    ``[store]`` given (else SQLite); yields it and the base URL."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    registry = tmp_path / "targets.json"
    registry.write_text(json.dumps(targets or [], ensure_ascii=False), encoding="utf-8")
    config = parse_config(
        {
            "server": {
                "data_dir": str(tmp_path / "data"),
                "sender": "city@example.cn",
                "public_url": base,
            },
            "registry": {"targets": str(registry)},
            "audio": {"engine_order": ["espeak-ng"]},
            "dispatcher": {
                "idle_poll_seconds": 0.05,
                "retry_base_seconds": 0.05,
                "retry_max_seconds": 0.2,
            },
            "channels": channels,
        }
        | ({"store": store} if store else {}),
        base_dir=tmp_path,
        source=None,
    )
    service = BroadcasterService(config)
    test_server = TestServer(make_app(service), host="127.0.0.1", port=port)
    await test_server.start_server()
    try:
        yield service, base
    finally:
        await test_server.close()
