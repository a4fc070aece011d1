"""The ``[scheduler]`` table: every problem reported at once with its key, by ``check-config``
and at start; the example configurations are valid; crontab weekdays mean what cron says."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broadcaster.config import load_config, parse_config
from broadcaster.errors import ConfigError
from broadcaster.scheduler.config import scheduler_config
from broadcaster.scheduler.triggers import cron_trigger, latest_fire_time, next_fire_time
from tests.conftest import REPO

BROKEN = """
[server]
port = 99999

[channels.boxes]
type = "log"

[scheduler]
timezone = "Mars/Olympus"
grace_minutes = -5

[[scheduler.schedules]]
name = "daily"
kind = "silent"
cron = "0 25 * * *"
channels = ["boxes", "sirens"]

[[scheduler.schedules]]
name = "daily"
kind = "audible-test"
cron = "0 10 1 * *"

[scheduler.notify]
channel = "pagers"
officers = [{ name = "duty", address = "+8613800000000" }]

[scheduler.linkcheck]
unhealthy_after = 0
"""

BROKEN_REFERENCES = """
[channels.boxes]
type = "log"

[[scheduler.schedules]]
name = "daily"
kind = "silent"
cron = "0 25 * * *"
channels = ["boxes", "sirens"]

[[scheduler.schedules]]
name = "daily"
kind = "audible-test"
cron = "0 10 1 * *"

[scheduler.notify]
channel = "pagers"

[scheduler.linkcheck.channels.modems]
interval_seconds = 60
"""


COUNTY_SECRETS = {
    "BROADCASTER_CITY_NODE_TOKEN": "city-node-token-for-tests",
    "BROADCASTER_TOWNSHIP_SECRET": "township-secret-for-tests",
    "BROADCASTER_DUTY_SECRET": "duty-secret-for-tests",
}


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broadcaster", "check-config", "--config", str(path)],
        cwd=REPO,
        env=os.environ | COUNTY_SECRETS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_names_every_scheduler_problem_at_once(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN, encoding="utf-8")
    result = check_config(path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    for key in (
        "server.port",
        "scheduler.timezone",
        "scheduler.grace_minutes",
        "scheduler.linkcheck.unhealthy_after",
        "scheduler.schedules.0.cron",
        "scheduler.schedules.0.channels.1",
        "scheduler.schedules.1.name",
    ):
        assert key in result.stderr, result.stderr


def test_references_to_missing_channels_and_bad_cron_are_named(tmp_path: Path) -> None:
    path = tmp_path / "references.toml"
    path.write_text(BROKEN_REFERENCES, encoding="utf-8")
    result = check_config(path)
    assert result.returncode == 1
    lines = [line.strip() for line in result.stderr.splitlines()]
    expected = {
        "scheduler.schedules.0.cron": "not a valid cron expression",
        "scheduler.schedules.0.channels.1": "no channel 'sirens'",
        "scheduler.schedules.1.name": "defined twice",
        "scheduler.schedules.1.geocodes": "kind audible-test needs geocodes or a [registry]",
        "scheduler.notify.channel": "no channel 'pagers'",
        "scheduler.linkcheck.channels.modems": "no such channel",
    }
    for key, words in expected.items():
        assert any(line.startswith(f"{key}:") and words in line for line in lines), (key, lines)


def test_the_service_refuses_to_start_on_the_same_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"scheduler": {"schedules": [{"name": "x", "kind": "silent", "cron": "bad"}]}},
            base_dir=tmp_path,
            source=None,
        )
    assert "scheduler.schedules.0.cron: Value error, not a valid cron expression" in str(
        caught.value
    )


@pytest.mark.parametrize("name", ["demo.toml", "county.toml"])
def test_example_configurations_are_valid_and_have_schedules(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in COUNTY_SECRETS.items():
        monkeypatch.setenv(variable, value)
    config = load_config(REPO / "config" / name)
    kinds = {s.kind for s in scheduler_config(config).schedules}
    assert kinds == {"silent", "audible-test", "exercise"}
    assert check_config(REPO / "config" / name).returncode == 0


def test_cron_weekdays_count_from_sunday_as_in_crontab() -> None:
    trigger = cron_trigger("30 9 * * 0", UTC)
    after = datetime(2026, 6, 1, tzinfo=UTC).timestamp()  # a Monday
    found = next_fire_time(trigger, after)
    assert found is not None
    assert datetime.fromtimestamp(found, UTC) == datetime(2026, 6, 7, 9, 30, tzinfo=UTC)
    assert next_fire_time(cron_trigger("30 9 * * 7", UTC), after) == found
    with pytest.raises(ValueError, match="has 4 fields"):
        cron_trigger("30 9 * *", UTC)


def test_latest_fire_time_counts_the_runs_in_between() -> None:
    trigger = cron_trigger("*/15 * * * *", UTC)
    start = datetime(2026, 6, 1, 8, 0, tzinfo=UTC).timestamp()
    latest, count = latest_fire_time(trigger, start, start + 3600)
    assert latest == start + 3600 and count == 4  # 08:15, 08:30, 08:45, 09:00
    assert latest_fire_time(trigger, start, start + 600) == (None, 0)
