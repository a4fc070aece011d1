"""The command line: CAP validation and conversion, config checks, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from broadcaster.cap.serialize import to_xml
from drivers.mqtt.testing import free_port
from tests.conftest import CAP_SAMPLES, CAP_XSD, REPO
from tests.core.support import make_alert
from tests.processes import broadcaster as run
from tests.processes import serve_argv, wait_http, write_log_server_config


def test_cap_validate_exit_codes_and_problem_lines() -> None:
    valid = sorted(str(p) for p in (CAP_SAMPLES / "valid").glob("*.xml"))
    ok = run("cap", "validate", *valid)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    invalid = str(CAP_SAMPLES / "invalid" / "google_invalid.xml")
    bad = run("cap", "validate", valid[0], invalid)
    assert bad.returncode == 1
    assert f"{invalid}: INVALID" in bad.stdout
    assert any(line.startswith(f"{invalid}: error /alert") for line in bad.stdout.splitlines())
    as_json = run("cap", "validate", "--json", invalid)
    report = json.loads(as_json.stdout)
    assert report[0]["valid"] is False and report[0]["problems"][0]["rule"]


def test_cap_validate_verdicts_on_every_sample() -> None:
    accepted = sorted(str(p) for d in ("valid", "cap11") for p in (CAP_SAMPLES / d).glob("*.xml"))
    ok = run("cap", "validate", *accepted)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count(": valid\n") == len(accepted)
    assert " error " not in ok.stdout
    refused = sorted(p for d in ("invalid", "hostile") for p in (CAP_SAMPLES / d).glob("*.xml"))
    assert len(refused) == 6
    for path in refused:
        bad = run("cap", "validate", str(path))
        assert bad.returncode == 1, bad.stdout
        assert f"{path}: INVALID" in bad.stdout
        assert "(not repairable)" in bad.stdout


def test_cap_validate_names_repairable_errors(tmp_path: Path) -> None:
    source = (CAP_SAMPLES / "valid" / "wmo_cn.xml").read_text(encoding="utf-8")
    sent = source.split("<sent>")[1].split("</sent>")[0]
    utc = datetime.fromisoformat(sent).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    path = tmp_path / "zulu.xml"
    path.write_text(source.replace(f"<sent>{sent}</sent>", f"<sent>{utc}.5Z</sent>"), "utf-8")
    result = run("cap", "validate", str(path))
    assert result.returncode == 1
    assert (
        f"{path}: error /alert/sent [cap-time]: sent: '{utc}.5Z' uses 'Z'; CAP writes UTC as "
        f"-00:00 (repairable: 'Z' read as -00:00 and the fraction of a second dropped: "
        f"{utc}-00:00)"
    ) in result.stdout
    assert f'{path}: INVALID (every error is repairable: [cap] intake = "repair"' in result.stdout
    (problem,) = json.loads(run("cap", "validate", "--json", str(path)).stdout)[0]["problems"]
    assert problem["repairable"] is True and problem["repair"].endswith(f"{utc}-00:00")


def test_cap_convert_cap11_to_valid_cap12(tmp_path: Path) -> None:
    out = tmp_path / "out.xml"
    sample = CAP_SAMPLES / "cap11" / "google_weather.xml"
    result = run("cap", "convert", str(sample), "-o", str(out))
    assert result.returncode == 0, result.stderr
    schema = etree.XMLSchema(etree.parse(str(CAP_XSD)))
    assert schema.validate(etree.parse(str(out))), schema.error_log
    as_json = tmp_path / "out.json"
    assert run("cap", "convert", str(out), "--to", "json", "-o", str(as_json)).returncode == 0
    back = run("cap", "convert", str(as_json), "--to", "xml")
    assert back.returncode == 0 and back.stdout.encode() == out.read_bytes()


def test_check_config_reports_every_problem_with_its_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        """
[server]
port = 99999
trusted_proxies = ["10.0.0.0/8", "proxy.example.cn"]
[dispatcher]
retry_base_seconds = -1
[channels.a]
type = "log"
concurrency = 0
[channels.b]
type = "webhook"
url = "ftp://x"
""",
        encoding="utf-8",
    )
    result = run("check-config", "--config", str(config))
    assert result.returncode == 1
    for key in ("server.port", "dispatcher.retry_base_seconds", "channels.a.concurrency"):
        assert key in result.stderr, result.stderr
    assert "'proxy.example.cn' is not an IP address or network" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_accepts_the_demo_and_masks_secrets_in_dumps(tmp_path: Path) -> None:
    assert run("check-config").returncode == 0
    config = tmp_path / "c.toml"
    config.write_text(
        '[[api.tokens]]\nname = "x"\ntoken = "very-secret-token"\n'
        '[channels.h]\ntype = "webhook"\nurl = "http://127.0.0.1:1/"\nsecret = "hmac-key-123"\n',
        encoding="utf-8",
    )
    dumped = run("serve", "--config", str(config), "--dump-config")
    assert dumped.returncode == 0, dumped.stderr
    assert "very-secret-token" not in dumped.stdout and "**********" in dumped.stdout
    assert "hmac-key-123" in config.read_text()  # channel tables are dumped as written...
    assert "hmac-key-123" not in dumped.stdout  # ...but never their secrets


def test_unknown_file_and_simulator_errors_are_one_line(tmp_path: Path) -> None:
    missing = run("cap", "validate", str(tmp_path / "none.xml"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    sim = run("sim", "nosuch")
    assert sim.returncode == 1 and "no simulator" in sim.stderr
    assert "Traceback" not in missing.stderr + sim.stderr


def test_secrets_never_show_in_repr_or_str(tmp_path: Path) -> None:
    from broadcaster.config import parse_config

    config = parse_config(
        {
            "api": {"tokens": [{"name": "x", "token": "tok-123456"}]},
            "channels": {"h": {"type": "webhook", "secret": "hmac-xyz"}},
        },
        base_dir=tmp_path,
        source=None,
    )
    shown = repr(config) + str(config) + str(config.api.tokens[0].token)
    assert "tok-123456" not in shown and "hmac-xyz" not in shown
    assert config.api.tokens[0].token.reveal() == "tok-123456"


def test_plugins_add_subcommands_through_entry_points(tmp_path: Path) -> None:
    csv = tmp_path / "groups.csv"
    csv.write_text(
        "group,name,division,number\ng1,officer,150921001001,+8613800000001\n", encoding="utf-8"
    )
    out = tmp_path / "targets.json"
    result = run("sms", "import", str(csv), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())[0]["address"] == "+8613800000001"


@pytest.mark.slow
def test_send_and_status_find_the_server_url_env_then_config(tmp_path: Path, processes) -> None:  # type: ignore[no-untyped-def]
    port, closed = free_port(), free_port()
    config = write_log_server_config(tmp_path, port=port, data_dir=tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    env["PYTHONPATH"] = str(REPO)
    processes.append(subprocess.Popen(serve_argv(config), cwd=REPO, env=env))
    wait_http(f"http://127.0.0.1:{port}/healthz")
    alert = tmp_path / "alert.xml"
    alert.write_bytes(to_xml(make_alert("cli-url-1")))

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "broadcaster", *args],
            cwd=tmp_path,  # no ./data here: the token comes from the configuration's
            env=env | extra,
            capture_output=True,
            text=True,
            timeout=60,
        )

    sent = cli("send", str(alert), "--config", str(config))  # [server] of the configuration
    assert sent.returncode == 0, sent.stderr
    alert_id = json.loads(sent.stdout)["id"]
    elsewhere = f"http://127.0.0.1:{closed}"
    refused = cli("status", alert_id, "--config", str(config), BROADCASTER_URL=elsewhere)
    assert refused.returncode == 1  # the environment comes before the configuration
    assert refused.stderr.startswith(f"error: cannot reach {elsewhere}: ")
    status = cli(
        "status", alert_id, "--config", str(config), "--url", f"http://127.0.0.1:{port}",
        BROADCASTER_URL=elsewhere,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr  # --url comes first
    assert status.stdout.startswith(f"alert {alert_id}: active")


def test_status_from_something_that_is_not_a_broadcaster_server(tmp_path: Path, processes) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    processes.append(
        subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/")
    done = run("status", "some-alert", "--url", url, "--token", "t")
    assert done.returncode == 1
    assert done.stderr == (
        f"error: {url} answered 404 with something other than JSON: is it a broadcaster server?\n"
    )
