"""``broadcaster new-channel NAME`` writes a package that installs, passes its own contract test
as generated, is listed by ``broadcaster channels`` and delivers an alert end to end through a
real server process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.cap.serialize import to_xml
from broadcaster.template import TemplateError, names, write_package
from drivers.mqtt.testing import free_port
from tests.core.support import make_alert, village_targets
from tests.processes import api, wait_http, wait_until

TOKEN = "new-channel-test-token"
BIN = Path(sys.executable).parent


def run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def mail_package(tmp_path: Path) -> Iterator[Path]:
    """``broadcaster new-channel mail`` and ``pip install -e ./mail`` (removed afterwards)."""
    made = run(str(BIN / "broadcaster"), "new-channel", "mail", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    installed = run(
        sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
        "-e", "./mail", cwd=tmp_path,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    try:
        yield tmp_path / "mail"
    finally:
        run(sys.executable, "-m", "pip", "uninstall", "-q", "-y", "broadcaster-mail", cwd=tmp_path)


@pytest.mark.slow
def test_the_generated_channel_passes_its_contract_and_delivers(
    tmp_path: Path, mail_package: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    tested = run(
        sys.executable, "-m", "pytest", "./mail", "-q", "-p", "no:cacheprovider", cwd=tmp_path
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "13 passed" in tested.stdout
    listed = run(str(BIN / "broadcaster"), "channels", cwd=tmp_path)
    assert "mail: mail: drops each delivery as a JSON file per target address" in listed.stdout

    port = free_port()
    targets = village_targets("duty-mail", 2)
    targets[1]["address"] = ""  # a target the channel can never reach
    (tmp_path / "targets.json").write_text(json.dumps(targets), encoding="utf-8")
    (tmp_path / "config.toml").write_text(
        f"""
[server]
port = {port}
data_dir = "{tmp_path / "data"}"
[registry]
targets = "targets.json"
[[api.tokens]]
name = "ci"
token = "{TOKEN}"
[channels.duty-mail]
type = "mail"
signing_key = "a-signing-key"
""",
        encoding="utf-8",
    )
    base = f"http://127.0.0.1:{port}"
    processes.append(
        subprocess.Popen(
            [str(BIN / "broadcaster"), "serve", "--config", str(tmp_path / "config.toml")],
            cwd=tmp_path,
        )
    )
    wait_http(base + "/healthz")
    alert_id = api(base, "/api/v1/alerts", TOKEN, to_xml(make_alert("mail-1")))["id"]

    def settled() -> dict[str, object] | None:
        found: dict[str, object] = api(base, f"/api/v1/alerts/{alert_id}/deliveries", TOKEN)
        return found if found["complete"] else None

    deliveries = wait_until(settled, "the alert's deliveries settling")
    assert deliveries["summary"] == {"duty-mail": {"confirmed": 1, "failed": 1}}
    [dropped] = (tmp_path / "data" / "mail-duty-mail" / "outbox" / "box-0").glob("*.json")
    body = json.loads(json.loads(dropped.read_text(encoding="utf-8"))["body"])
    assert body["to"] == "box-0" and body["texts"][0]["title"]
    health = api(base, "/healthz", TOKEN)
    assert health["channels"]["duty-mail"]["ok"] is True


def test_names_and_refusals(tmp_path: Path) -> None:
    assert names("county-pager") == {
        "name": "county-pager",
        "package": "broadcaster_county_pager",
        "distribution": "broadcaster-county-pager",
        "cls": "CountyPagerChannel",
        "env": "COUNTY_PAGER",
    }
    for bad in ("Mail", "1mail", "mail box", "mail-", "../mail", ""):
        with pytest.raises(TemplateError, match="not a channel name"):
            write_package(bad, tmp_path)
    write_package("mail", tmp_path)
    before = {p: p.read_bytes() for p in (tmp_path / "mail").rglob("*") if p.is_file()}
    with pytest.raises(TemplateError, match="exists already"):
        write_package("mail", tmp_path)
    assert {p: p.read_bytes() for p in (tmp_path / "mail").rglob("*") if p.is_file()} == before
    assert "{{" not in "".join(b.decode() for b in before.values())
