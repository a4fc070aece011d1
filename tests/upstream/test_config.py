"""``[[upstream]]`` and ``[[neighbour]]`` in the configuration: a valid federation loads, and
check-config's preflight names every problem with its key."""

from __future__ import annotations

import json
from pathlib import Path

from broadcaster.config import load_config
from broadcaster.preflight import preflight
from tests.signing import key_and_cert

VALID = """
[server]
port = 0
data_dir = "data"

[registry]
targets = "targets.json"

[channels.log]
type = "log"

[[upstream]]
name = "region"
mode = "poll"
url = "https://warning.nmg.example.cn/cap/feed.atom"
interval_seconds = 30
require_signature = true
trusted_certificates = ["region.crt"]
areas = ["150900"]
policy = "review"

[[upstream]]
name = "hohhot"
mode = "push"
token = "hohhot-pushes-with-this"
channels = ["log"]

[[neighbour]]
name = "datong"
token = "datong-reads-with-this"
areas = ["140200"]
events = ["暴雪", "寒潮"]
"""


def _write(folder: Path, text: str) -> Path:
    (folder / "targets.json").write_text(
        json.dumps([{"id": "t1", "channel": "log", "name": "村1", "division": "150921001001"}]),
        encoding="utf-8",
    )
    (folder / "region.crt").write_bytes(key_and_cert()[1])
    path = folder / "broadcaster.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_federation_loads_with_its_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID)
    config = load_config(path)
    region, hohhot = config.upstream
    assert (region.format, region.max_bytes, region.allowed_hosts) == ("atom", 1_048_576, [])
    assert hohhot.policy == "auto" and str(hohhot.token) == "**********"
    assert config.neighbour[0].scopes == ["Public"]
    report = preflight(path)
    assert report.errors == []
    dumped = config.model_dump_json()
    assert "hohhot-pushes-with-this" not in dumped and "datong-reads-with-this" not in dumped


def test_preflight_names_every_federation_problem(tmp_path: Path) -> None:
    broken = (
        VALID.replace('"region.crt"', '"missing.crt"')
        .replace('areas = ["150900"]', 'areas = ["15x9"]')
        .replace('channels = ["log"]', 'channels = ["sms"]')
        .replace("datong-reads-with-this", "hohhot-pushes-with-this")
        + '\n[[upstream]]\nname = "region"\nmode = "push"\ntoken = "another-token-1"\n'
    )
    errors = preflight(_write(tmp_path, broken)).errors
    expected = [
        "upstream: the name 'region' is given twice",
        "upstream.hohhot.token: the same token is given to another source, neighbour or API",
        "neighbour.datong.token: the same token is given to another source, neighbour or API",
        "upstream.region.areas: ",
        "upstream.hohhot.channels: not configured: sms",
        "upstream.region.trusted_certificates: cannot read ",
    ]
    for start in expected:
        assert any(e.startswith(start) for e in errors), (start, errors)


def test_a_source_missing_what_its_mode_needs_is_refused(tmp_path: Path) -> None:
    for table, message in (
        ('name = "a"\nmode = "push"\n', "a push source needs a token"),
        ('name = "a"\nmode = "poll"\n', "a polled source needs a url"),
        ('name = "a"\nmode = "poll"\nurl = "ftp://x/feed"\n', "should match pattern"),
        ('name = "a"\nmode = "poll"\nurl = "https://u:p@x/feed"\n', "must not carry credentials"),
        ('name = "A B"\nmode = "push"\ntoken = "t-123"\n', "should match pattern"),
    ):
        errors = preflight(_write(tmp_path, f"[server]\nport = 0\n[[upstream]]\n{table}")).errors
        assert any(e.startswith("upstream.0") and message in e for e in errors), (table, errors)
