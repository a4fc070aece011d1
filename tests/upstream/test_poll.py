"""Polled upstream sources against a real feed server on loopback: trust, deduplication,
conditional GET, backoff and health, and links that leave the feed's host."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from broadcaster.cap import format_cap_time
from broadcaster.cap.serialize import to_xml
from broadcaster.config import Config
from broadcaster.federationconfig import NodeConfig
from broadcaster.intake import alert_id_for
from broadcaster.upstream.poller import SourcePoller
from tests.core.support import (
    DUTY_TOKEN,
    RecordingChannel,
    make_alert,
    make_config,
    village_targets,
    wait_for_deliveries,
    with_api_tokens,
)
from tests.upstream.support import Signing, feed_server, node, tampered, with_sources

CHANNELS = {"rec": {"type": "tests.core.support:RecordingChannel"}}
FAST = {"interval_seconds": 0.05, "backoff_max_seconds": 0.4, "timeout_seconds": 2}


def _config(tmp_path: Path, *sources: dict[str, object]) -> Config:
    RecordingChannel.sent.clear()
    return with_sources(make_config(tmp_path, CHANNELS, village_targets("rec", 3)), *sources)


async def test_a_signed_source_takes_only_what_its_key_signed(tmp_path: Path) -> None:
    region, stranger = Signing.make(tmp_path), Signing.make(tmp_path, "stranger")
    signed = region.sign(make_alert("signed"))
    async with feed_server() as feed:
        feed.documents = {
            "signed": signed,
            "unsigned": to_xml(make_alert("unsigned")),
            "tampered": tampered(region.sign(make_alert("tampered"))),
            "foreign": stranger.sign(make_alert("foreign")),
        }
        source = {
            "name": "region",
            "mode": "poll",
            "url": f"{feed.base}/feed.atom",
            "require_signature": True,
            "trusted_certificates": [str(region.cert_file)],
            **FAST,
        }
        async with node(_config(tmp_path, source)) as here:
            await here.polled("region", 1)
            table = here.service.upstream.gates["region"]
            rows = await here.service.database.run(
                lambda: here.service.database.query(
                    "SELECT entry, outcome, alert_id FROM upstream_entries ORDER BY entry"
                )
            )
            outcomes = {row["entry"]: row["outcome"] for row in rows}
            assert outcomes == {
                "urn:signed": "created",
                "urn:unsigned": "refused",
                "urn:tampered": "refused",
                "urn:foreign": "refused",
            }
            assert await here.alert_count() == 1
            assert table.health.ok  # refused documents do not make the feed unhealthy
            assert "refused a document" in (table.health.last_error or "")


async def test_a_token_only_source_takes_unsigned_but_never_tampered(tmp_path: Path) -> None:
    region = Signing.make(tmp_path)
    async with feed_server() as feed:
        feed.documents = {
            "unsigned": to_xml(make_alert("unsigned")),
            "tampered": tampered(region.sign(make_alert("tampered"))),
        }
        source = {"name": "region", "mode": "poll", "url": f"{feed.base}/index.txt"}
        source |= {"format": "index", **FAST}
        async with node(_config(tmp_path, source)) as here:
            await here.polled("region", 1)
            assert await here.alert_count() == 1
            counts = here.service.upstream.gates["region"].health.counts
            assert counts == {"created": 1, "refused": 1}


async def test_the_same_alert_from_two_sources_and_after_a_restart_is_taken_once(
    tmp_path: Path,
) -> None:
    alert = to_xml(make_alert("shared"))
    async with feed_server() as one, feed_server() as two:
        one.documents = two.documents = {"shared": alert}
        sources = [
            {"name": "region", "mode": "poll", "url": f"{one.base}/feed.atom", **FAST},
            {"name": "hohhot", "mode": "poll", "url": f"{two.base}/feed.atom", **FAST},
        ]
        config = _config(tmp_path, *sources)
        async with node(config) as here:
            await here.polled("region", 2)
            await here.polled("hohhot", 2)
            assert await here.alert_count() == 1
            counts = {n: h.counts for n, h in here.service.upstream.health().items()}
            assert sorted(c.get("created", 0) for c in counts.values()) == [0, 1]
            assert sorted(c.get("duplicate", 0) for c in counts.values()) == [0, 1]
            assert len(RecordingChannel.sent) == 3
        fetched = one.fetched("/cap/shared.xml")
        assert fetched == 1
        # Restarted on the same data directory: the first poll is conditional (304) and the
        # entry is never fetched again.
        async with node(config) as here:
            await here.polled("region", 1)
            assert one.fetched("/cap/shared.xml") == fetched
            _path, headers = [r for r in one.requests if r[0] == "/feed.atom"][-1]
            assert headers.get("If-None-Match")
            assert await here.alert_count() == 1


async def test_conditional_get_is_honoured(tmp_path: Path) -> None:
    async with feed_server() as feed:
        feed.documents = {"one": to_xml(make_alert("one"))}
        source = {"name": "region", "mode": "poll", "url": f"{feed.base}/feed.atom", **FAST}
        async with node(_config(tmp_path, source)) as here:
            await here.polled("region", 4)
            feeds = [headers for path, headers in feed.requests if path == "/feed.atom"]
            assert "If-None-Match" not in feeds[0]
            assert all("If-None-Match" in h for h in feeds[1:])
            assert feed.fetched("/cap/one.xml") == 1
            # A new entry changes the feed: fetched in full once more, and only the new one.
            feed.documents["two"] = to_xml(make_alert("two"))
            await here.polled("region", here.service.upstream.health()["region"].polls + 2)
            assert feed.fetched("/cap/two.xml") == 1 and feed.fetched("/cap/one.xml") == 1
            assert await here.alert_count() == 2


async def test_errors_and_garbage_back_off_and_show_in_healthz_and_metrics(
    tmp_path: Path,
) -> None:
    async with feed_server() as feed:
        feed.documents = {"one": to_xml(make_alert("one"))}
        feed.failure = 503
        source = {"name": "region", "mode": "poll", "url": f"{feed.base}/feed.atom"}
        source |= {"interval_seconds": 0.05, "backoff_max_seconds": 0.2}
        async with node(_config(tmp_path, source)) as here:
            await here.polled("region", 3)
            health = here.service.upstream.health()["region"]
            assert health.failures >= 3 and health.last_success is None
            assert "HTTP 503" in (health.last_error or "")
            _, body = await here.get("/healthz")
            assert body["status"] == "degraded" and body["upstream"] == {"region": {"ok": False}}
            token = (here.service.data_dir / "api-token").read_text().strip()
            _, body = await here.get("/healthz", token=token)
            details = body["upstream"]["region"]
            assert details["ok"] is False and details["failures"] >= 3
            assert "HTTP 503" in details["last_error"] and details["lag_seconds"] is None
            for garbage in (b"\x00\x01 not a feed", b"<html><body>maintenance</body></html>"):
                feed.failure, feed.garbage = None, garbage
                await here.polled("region", health.polls + 1)
                assert "feed" in (health.last_error or ""), health.last_error
            assert health.failures >= 5
            _, metrics = await here.get("/metrics")
            assert b'broadcaster_upstream_up{source="region"} 0' in metrics
            assert b'broadcaster_upstream_failures{source="region"} ' in metrics
            feed.garbage = None
            await here.polled("region", health.polls + 1)
            assert health.ok and health.last_success is not None
            _, body = await here.get("/healthz", token=token)
            assert (
                body["upstream"]["region"]["ok"] and body["upstream"]["region"]["lag_seconds"] < 5
            )
            assert await here.alert_count() == 1
            _, metrics = await here.get("/metrics")
            assert b'broadcaster_upstream_up{source="region"} 1' in metrics
            assert b'broadcaster_upstream_lag_seconds{source="region"} ' in metrics
            created = b'broadcaster_upstream_documents_total{source="region",outcome="created"} 1'
            assert created in metrics


async def test_backoff_doubles_up_to_its_cap_and_resets_on_success(tmp_path: Path) -> None:
    async with feed_server(failure=500) as feed:
        source = {"name": "region", "mode": "poll", "url": f"{feed.base}/feed.atom"}
        source |= {"interval_seconds": 5, "backoff_max_seconds": 40}
        async with node(_config(tmp_path, source)) as here, aiohttp.ClientSession() as session:
            # A poller of its own, driven round by round (the service's waits 10 s by now).
            await here.polled("region", 1)
            gate = here.service.upstream.gates["region"]
            poller = SourcePoller(gate, here.service.database, session, here.service.clock)
            waits = [await poller.poll() for _ in range(5)]
            assert waits == [20, 40, 40, 40, 40]  # the service's own round failed first
            feed.failure = None
            assert await poller.poll() == 5 and gate.health.ok


async def test_entry_links_and_redirects_to_other_hosts_are_refused(tmp_path: Path) -> None:
    async with feed_server() as feed, feed_server(host="127.0.0.2") as elsewhere:
        elsewhere.documents = {"x": to_xml(make_alert("elsewhere"))}
        feed.documents = {"away": b"", "bounce": b"", "here": to_xml(make_alert("here"))}
        feed.links = {
            "away": f"{elsewhere.base}/cap/x.xml",
            "bounce": f"/redirect?to={elsewhere.base}/cap/x.xml",
        }
        source = {"name": "region", "mode": "poll", "url": f"{feed.base}/feed.atom", **FAST}
        async with node(_config(tmp_path, source)) as here:
            await here.polled("region", 2)
            assert elsewhere.requests == []
            rows = await here.service.database.run(
                lambda: here.service.database.query(
                    "SELECT entry, outcome FROM upstream_entries ORDER BY entry"
                )
            )
            assert {r["entry"]: r["outcome"] for r in rows} == {
                "urn:away": "refused-link",
                "urn:bounce": "refused-link",
                "urn:here": "created",
            }
            assert "refused" in (here.service.upstream.health()["region"].last_error or "")
        # With the other host allowed, the link is followed.
        source["allowed_hosts"] = ["127.0.0.2"]
        (tmp_path / "again").mkdir()
        async with node(_config(tmp_path / "again", source)) as here:
            await here.polled("region", 1)
            assert elsewhere.fetched("/cap/x.xml") == 2
            assert await here.alert_count() == 2


async def test_oversized_and_slow_answers_are_errors(tmp_path: Path) -> None:
    async with feed_server() as feed:
        feed.garbage = b"<" * 5000
        sources = [
            {"name": "declared", "mode": "poll", "url": f"{feed.base}/feed.atom"},
            {"name": "endless", "mode": "poll", "url": f"{feed.base}/endless"},
        ]
        sources = [s | FAST | {"max_bytes": 1024, "timeout_seconds": 5} for s in sources]
        async with node(_config(tmp_path, *sources)) as here:
            await here.polled("declared", 1)
            await here.polled("endless", 1)
            health = here.service.upstream.health()
            assert health["declared"].last_error == "answer of 5000 bytes; limit 1024"
            endless = health["endless"].last_error
            assert endless == "answer longer than the limit of 1024 bytes"
    async with feed_server(delay=1) as feed:
        source = {"name": "slow", "mode": "poll", "url": f"{feed.base}/feed.atom"}
        source |= FAST | {"timeout_seconds": 0.2}
        async with node(_config(tmp_path, source)) as here:
            await here.polled("slow", 1)
            error = here.service.upstream.health()["slow"].last_error or ""
            assert error.startswith("no complete answer from 127.0.0.1:") and "0.2 s" in error


async def test_a_city_node_takes_a_region_wide_warning_its_officers_may_not_send(
    tmp_path: Path,
) -> None:
    """``[node] role = "city"`` limits what the city's officers send, not what the region's
    source brings: a warning for the whole region is taken and delivered here."""
    region_wide = make_alert("nmg-wide", sender="nmg@example.cn", geocodes=("150000000000",))
    async with feed_server() as feed:
        feed.documents = {"nmg-wide": to_xml(region_wide)}
        source = {"name": "region", "mode": "poll", "url": f"{feed.base}/feed.atom", **FAST}
        config = with_api_tokens(_config(tmp_path, source), DUTY_TOKEN)
        config = config.model_copy(update={"node": NodeConfig(role="city", division="150900")})
        async with node(config) as here:
            officer = {"Authorization": f"Bearer {DUTY_TOKEN['token']}"}
            own = to_xml(make_alert("own-wide", geocodes=("150000000000",)))
            headers = officer | {"Content-Type": "application/cap+xml"}
            async with here.session.post("/api/v1/alerts", data=own, headers=headers) as answer:
                refused = await answer.json()
                assert answer.status == 403
                assert refused["problems"][0]["rule"] == "outside-division"
            await here.polled("region", 1)
            counts = here.service.upstream.health()["region"].counts
            assert counts == {"created": 1}
            assert await here.alert_count() == 1
            rows = await wait_for_deliveries(
                here.service,
                alert_id_for(
                    region_wide.sender, region_wide.identifier, format_cap_time(region_wide.sent)
                ),
                lambda rows: len(rows) == 3 and all(r["state"] == "confirmed" for r in rows),
            )
            assert {r["target_id"] for r in rows} == {t["id"] for t in village_targets("rec", 3)}
