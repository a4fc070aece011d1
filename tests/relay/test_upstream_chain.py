"""The two halves of federation end to end, as real server processes: the region pushes a
region-wide warning to a city node (an ``[[upstream]]`` source), the city relays it with the
``relay`` channel to its county nodes, which deliver on slow devices; the region's Cancel then
reaches the city and stops what is still queued there and at the counties (what went out is
not sent again), and the city's view shows the counties' final state."""

from __future__ import annotations

import json
import subprocess
import urllib.error
from pathlib import Path
from typing import Any

import pytest

from broadcaster.cap import MsgType
from broadcaster.cap.serialize import to_xml
from broadcaster.federation.demo import NodeLayout, write_federation
from tests.core.support import make_alert, village_targets
from tests.processes import api, wait_until
from tests.relay.test_federation import _county_log, _get, _started, free_ports

REGION_TOKEN = "region-push-token-0123456789"
REGION_SENDER = "nmg.emergency@example.cn"
REGION_WIDE = "150000000000"  # 内蒙古自治区: beyond the city's own division
JINING, JINING_VILLAGES = "150902000000", 60


def _push(city: NodeLayout, document: bytes) -> Any:
    return api(city.url, "/api/v1/alerts", REGION_TOKEN, document)


def _summary(node: NodeLayout, alert_id: str) -> dict[str, dict[str, int]]:
    summary: dict[str, dict[str, int]] = _get(node, f"/api/v1/alerts/{alert_id}/deliveries")[
        "summary"
    ]
    return summary


def test_a_region_warning_relayed_to_counties_and_its_cancel_stopping_the_queue(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    layout = write_federation(tmp_path, free_ports(3), devices="log")
    city = layout.city
    # Slow devices: each county's log channel sends 8 a second, so its villages take seconds.
    villages: dict[str, int] = {}
    for county in layout.counties:
        text = county.config.read_text(encoding="utf-8")
        county.config.write_text(text + "rate_per_second = 8\n", encoding="utf-8")
        targets = json.loads((county.directory / "targets.json").read_text(encoding="utf-8"))
        villages[county.name] = len(targets)
    # The city serves 集宁区 (no county node) itself, on a log channel as slow.
    registry = city.directory / "targets.json"
    registry.write_text(json.dumps(village_targets("log", JINING_VILLAGES, JINING)))
    text = city.config.read_text(encoding="utf-8")
    text = text.replace("[registry]\n", f"[registry]\ntargets = {json.dumps(str(registry))}\n")
    text += '\n[channels.log]\ntype = "log"\nrate_per_second = 8\n'
    text += f'\n[[upstream]]\nname = "region"\nmode = "push"\ntoken = "{REGION_TOKEN}"\n'
    city.config.write_text(text, encoding="utf-8")
    _started(layout, processes)

    # The city's officers warn only within the city; the region's source may warn wider.
    warning = make_alert("nmg-1", sender=REGION_SENDER, geocodes=(REGION_WIDE,))
    with pytest.raises(urllib.error.HTTPError) as refused:
        api(
            city.url,
            "/api/v1/alerts",
            city.officer_token,
            to_xml(make_alert("own", geocodes=(REGION_WIDE,))),
        )
    assert refused.value.code == 403
    assert "outside-division" in refused.value.read().decode()
    taken = _push(city, to_xml(warning))
    assert taken["outcome"] == "created", taken
    alert_id = taken["id"]
    planned = _get(city, f"/api/v1/alerts/{alert_id}/deliveries?limit=500")["deliveries"]
    relays = sorted(r["target_id"] for r in planned if r["channel"] == "relay")
    assert relays == ["node-150921", "node-150925"]
    assert sum(1 for r in planned if r["channel"] == "log") == JINING_VILLAGES

    def serving() -> bool:
        if _summary(city, alert_id).get("log", {}).get("confirmed", 0) < 3:
            return False
        for county in layout.counties:
            log = _summary(county, alert_id).get("log", {})
            if not 3 <= log.get("confirmed", 0) < villages[county.name] - 10:
                return False
        return True

    wait_until(serving, "both counties serving their villages", timeout=30)

    # The region lifts it: the Cancel comes upstream to the city and down the relay.
    cancel = make_alert(
        "nmg-1-lifted",
        sender=REGION_SENDER,
        msg_type=MsgType.CANCEL,
        references=[warning],
        geocodes=(REGION_WIDE,),
    )
    lifted = _push(city, to_xml(cancel))
    assert lifted["outcome"] == "created", lifted
    assert _get(city, f"/api/v1/alerts/{alert_id}")["state"] == "cancelled"

    def stopped(node: NodeLayout) -> dict[str, int] | None:
        body = _get(node, f"/api/v1/alerts/{alert_id}/deliveries")
        return body["summary"]["log"] if body["complete"] else None

    here = wait_until(lambda: stopped(city), "the city stopping its own queue", timeout=15)
    assert set(here) == {"confirmed", "cancelled"} and sum(here.values()) == JINING_VILLAGES

    def sent_once(node: NodeLayout, confirmed: int) -> None:
        """What went out is not sent again: one line per village that was served."""
        lines = _county_log(node)
        keys = [k for k in (line["idempotency_key"] for line in lines) if k.startswith(alert_id)]
        assert len(keys) == len(set(keys)) == confirmed

    sent_once(city, here["confirmed"])
    for county in layout.counties:
        log = wait_until(lambda c=county: stopped(c), f"{county.label} stopping", timeout=15)
        assert _get(county, f"/api/v1/alerts/{alert_id}")["state"] == "cancelled"
        assert set(log) == {"confirmed", "cancelled"}, log
        assert log["confirmed"] + log["cancelled"] == villages[county.name]
        assert log["cancelled"] >= 5, log
        sent_once(county, log["confirmed"])

    # The city shows each county's final state under its relay delivery.
    def reported() -> list[dict[str, Any]] | None:
        rows = _get(city, f"/api/v1/alerts/{alert_id}/deliveries?limit=500")["deliveries"]
        done = [r for r in rows if r["channel"] == "relay" and (r["report"] or {}).get("complete")]
        return done if len(done) == 2 else None

    rows = wait_until(reported, "the counties' final state at the city", timeout=20)
    for row in rows:
        county = next(c for c in layout.counties if row["target_id"] == f"node-{c.division}")
        assert row["report"]["summary"] == {"log": stopped(county)}

    # The Cancel itself went down the same path and out to the villages that were warned.
    def cancel_confirmed() -> bool:
        rows = _get(city, f"/api/v1/alerts/{lifted['id']}/deliveries")["deliveries"]
        relays = [r for r in rows if r["channel"] == "relay"]
        return len(relays) == 2 and all(r["state"] == "confirmed" for r in relays)

    wait_until(cancel_confirmed, "the Cancel confirmed by both counties", timeout=20)
    for county in layout.counties:
        warned = _summary(county, alert_id)["log"]["confirmed"]
        assert _summary(county, lifted["id"]) == {"log": {"confirmed": warned}}
