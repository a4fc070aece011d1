"""Neighbour feeds over a real socket: only what each neighbour's rules allow, only with its
token, signed; and a neighbouring node taking the feed as one of its upstream sources."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lxml import etree

from broadcaster.cap import Scope
from broadcaster.cap.signature import verify_signature
from broadcaster.config import CapConfig, Config, Secret
from broadcaster.federationconfig import NeighbourConfig
from tests.core.support import (
    OTHER_COUNTY,
    RecordingChannel,
    make_alert,
    make_config,
    village_targets,
)
from tests.signing import key_and_cert
from tests.upstream.support import ATOM, Node, node, with_sources

CHANNELS = {"rec": {"type": "tests.core.support:RecordingChannel"}}
HOHHOT, DATONG = "hohhot-feed-token-1", "datong-feed-token-2"


def _signed_config(tmp_path: Path) -> tuple[Config, bytes]:
    key_pem, cert_pem, _ = key_and_cert("ec")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    key.write_bytes(key_pem)
    cert.write_bytes(cert_pem)
    targets = village_targets("rec", 2) + village_targets("rec", 2, OTHER_COUNTY)
    config = make_config(tmp_path, CHANNELS, targets)
    neighbours = [
        NeighbourConfig.model_validate(
            {"name": "hohhot", "token": HOHHOT, "areas": ["150921"], "events": ["暴雪"]}
        ),
        NeighbourConfig.model_validate(
            {"name": "datong", "token": DATONG, "scopes": ["Public", "Restricted"]}
        ),
    ]
    cap = CapConfig(signing_key=key, signing_certificate=cert)
    return config.model_copy(update={"neighbour": neighbours, "cap": cap}), cert_pem


def _entries(feed: bytes) -> list[str]:
    root = etree.fromstring(feed)
    return [
        str(link.get("href"))
        for link in root.iterfind(f"{{{ATOM}}}entry/{{{ATOM}}}link")
        if link.get("type") == "application/cap+xml"
    ]


async def test_a_neighbour_feed_carries_only_what_its_rules_allow(tmp_path: Path) -> None:
    RecordingChannel.sent.clear()
    config, cert_pem = _signed_config(tmp_path)
    async with node(config) as here:
        submit = here.service.submit
        ours = await submit(make_alert("snow-here"), origin="test")
        elsewhere = await submit(make_alert("snow-there", geocodes=[OTHER_COUNTY]), origin="test")
        other_event = make_alert("fire-here")
        other_event.infos[0].event = "森林火险"
        fire = await submit(other_event, origin="test")
        restricted = make_alert("restricted-here")
        restricted.scope, restricted.restriction = Scope.RESTRICTED, "emergency staff only"
        staff = await submit(restricted, origin="test")
        held = await submit(make_alert("held-here"), origin="test", requested_by="console:li")
        status, feed = await here.get("/feeds/hohhot.atom", token=HOHHOT)
        assert status == 200
        links = _entries(feed)
        assert [link.rsplit("/", 1)[1] for link in links] == [f"{ours.alert_id}.xml"]
        assert links[0].endswith(f"/feeds/hohhot/alerts/{ours.alert_id}.xml")
        report = verify_signature(feed, trusted_certs=[cert_pem], element="feed")
        assert (report.status, report.certificate) == ("valid", "trusted")
        status, feed = await here.get("/feeds/datong.atom", token=DATONG)
        shown = {link.rsplit("/", 1)[1][:-4] for link in _entries(feed)}
        assert shown == {ours.alert_id, elsewhere.alert_id, fire.alert_id, staff.alert_id}
        assert held.alert_id not in shown
        # Each entry's document, as received, under the same token and rules.
        status, document = await here.get(f"/feeds/hohhot/alerts/{ours.alert_id}.xml", HOHHOT)
        raw = await here.service.store.alerts.raw_xml(ours.alert_id)
        assert status == 200 and document == raw
        for alert_id in (elsewhere.alert_id, staff.alert_id, held.alert_id):
            status, _ = await here.get(f"/feeds/hohhot/alerts/{alert_id}.xml", HOHHOT)
            assert status == 404
        # The public feed still carries Public alerts only.
        _, public = await here.get("/feed.atom")
        assert staff.alert_id not in public.decode()


async def test_a_neighbour_feed_refuses_a_wrong_or_missing_token(tmp_path: Path) -> None:
    config, _ = _signed_config(tmp_path)
    async with node(config) as here:
        await here.service.submit(make_alert("snow-here"), origin="test")
        for path, token in (
            ("/feeds/hohhot.atom", None),
            ("/feeds/hohhot.atom", DATONG),
            ("/feeds/hohhot.atom", HOHHOT + "x"),
            ("/feeds/nobody.atom", HOHHOT),
        ):
            status, body = await here.get(path, token=token)
            assert status == 401, (path, token)
            assert b"snow" not in (body if isinstance(body, bytes) else b"")


async def test_a_neighbouring_node_takes_the_feed_as_an_upstream_source(tmp_path: Path) -> None:
    RecordingChannel.sent.clear()
    config, cert_pem = _signed_config(tmp_path)
    (tmp_path / "b").mkdir()
    async with node(config) as city:
        shared = await city.service.submit(make_alert("snow-here"), origin="test")
        await city.service.submit(make_alert("snow-there", geocodes=[OTHER_COUNTY]), origin="test")
        cert_file = tmp_path / "b" / "city.crt"
        cert_file.write_bytes(cert_pem)
        url = f"{city.service.public_url}/feeds/hohhot.atom"
        source = {"name": "city", "mode": "poll", "url": url, "token": HOHHOT}
        source |= {"interval_seconds": 0.05, "require_signature": True}
        source["trusted_certificates"] = [str(cert_file)]
        neighbour = with_sources(
            make_config(tmp_path / "b", CHANNELS, village_targets("rec", 2)), source
        )
        async with node(neighbour) as there:
            await there.polled("city", 1)
            health = there.service.upstream.health()["city"]
            # The city's alerts were written by the city itself, signed with its key.
            assert health.ok and health.counts == {"created": 1}, health.last_error
            assert await there.alert_count() == 1
            record = await there.service.store.alerts.get(shared.alert_id)
            assert record is not None and record["origin"] == "upstream:city"


async def test_shared_alerts_are_pushed_once_to_a_neighbours_api(tmp_path: Path) -> None:
    """Node A pushes what hohhot's rules allow to node B's API, where A is a push source;
    each alert once; a neighbour that cannot be reached is shown in /healthz and retried."""
    RecordingChannel.sent.clear()
    (tmp_path / "b").mkdir()
    source = {"name": "ulanqab", "mode": "push", "token": "ulanqab-pushes-here"}
    receiver = with_sources(
        make_config(tmp_path / "b", CHANNELS, village_targets("rec", 2)), source
    )
    async with node(receiver) as there:
        config, _ = _signed_config(tmp_path)
        hohhot = config.neighbour[0].model_copy(
            update={
                "push_url": f"{there.service.public_url}/api/v1/alerts",
                "push_token": Secret("ulanqab-pushes-here"),
                "push_interval_seconds": 0.05,
            }
        )
        config = config.model_copy(update={"neighbour": [hohhot]})
        async with node(config) as here:
            shared = await here.service.submit(make_alert("snow-here"), origin="test")
            await here.service.submit(
                make_alert("snow-there", geocodes=[OTHER_COUNTY]), origin="test"
            )
            await _pushed(here, 2)
            assert await there.alert_count() == 1
            record = await there.service.store.alerts.get(shared.alert_id)
            assert record is not None and record["origin"] == "upstream:ulanqab"
            # Pushed once, however many rounds run.
            await _pushed(here, here.service.neighbours.health["hohhot"].polls + 3)
            audit = await there.service.store.audit.entries()
            assert [e.action for e in audit if e.actor == "upstream:ulanqab"] == [
                "upstream.created"
            ]
    # The neighbour is gone: the next alert fails, is shown and retried.
    async with node(config) as here:
        await here.service.submit(make_alert("snow-later"), origin="test")
        await _pushed(here, here.service.neighbours.health["hohhot"].polls + 2)
        health = here.service.neighbours.health["hohhot"]
        assert health.failures >= 1 and "cannot push" in (health.last_error or "")
        _, body = await here.get("/healthz")
        assert body["neighbours"] == {"hohhot": {"ok": False}}


async def _pushed(here: Node, rounds: int, timeout: float = 10.0) -> None:
    health = here.service.neighbours.health["hohhot"]
    async with asyncio.timeout(timeout):
        while health.polls < rounds:
            await asyncio.sleep(0.02)
