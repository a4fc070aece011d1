"""check-config and serve run one preflight: every problem at once, each with its key, and
serve refuses to start with exactly the list check-config prints."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from broadcaster.testing.pgserver import PgServer
from tests.processes import broadcaster

UNSET = "BROADCASTER_PREFLIGHT_TEST_UNSET"
TARGETS = [
    {"id": "t1", "channel": "log", "name": "村1", "division": "150921001001"},
    {"id": "t2", "channel": "ghost", "name": "村2", "division": "150921001002"},
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return broadcaster(*args, env={k: v for k, v in os.environ.items() if k != UNSET})


def problems(stderr: str) -> list[str]:
    """The problem lines of a preflight report (indented under its heading)."""
    return [line.strip() for line in stderr.splitlines() if line.startswith("  ")]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def write_config(folder: Path, port: int, **broken: str) -> Path:
    """A valid configuration on a free ``port``, with the named sections replaced."""
    (folder / "targets.json").write_text(json.dumps(TARGETS[:1]), encoding="utf-8")
    sections = {
        "server": f'[server]\nport = {port}\ndata_dir = "{folder / "data"}"\n',
        "registry": '[registry]\ntargets = "targets.json"\n',
        "channels": '[channels.log]\ntype = "log"\n',
    } | broken
    path = folder / "broadcaster.toml"
    path.write_text("\n".join(sections.values()), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _secret(folder: Path, mode: int) -> Path:
    path = folder / "secret"
    path.write_text("s3cret-value\n", encoding="utf-8")
    path.chmod(mode)
    return path


BROKEN: dict[str, tuple[dict[str, str], str]] = {
    "section": ({"dispatcher": "[dispatcher]\nretry_base_seconds = -1\n"}, "dispatcher."),
    "channel-table": (
        {"channels": '[channels.log]\ntype = "log"\nconcurrency = 0\n'},
        "channels.log.concurrency: ",
    ),
    "channel-plugin": (
        {"channels": '[channels.log]\ntype = "log"\n[channels.x]\ntype = "no-such-plugin"\n'},
        "channels.x: ",
    ),
    "env-secret": (
        {"api": f'[[api.tokens]]\nname = "feed"\ntoken = {{ env = "{UNSET}" }}\n'},
        f"api.tokens.0.token: Value error, environment variable {UNSET} is not set or empty",
    ),
    "file-secret-missing": (
        {"api": '[[api.tokens]]\nname = "feed"\ntoken = { file = "/nonexistent/secret" }\n'},
        "api.tokens.0.token: Value error, cannot read secret file /nonexistent/secret",
    ),
    "divisions": (
        {"registry": '[registry]\ntargets = "targets.json"\ndivisions = "demo/nope.json"\n'},
        "registry.divisions: ",
    ),
    "targets": ({"registry": '[registry]\ntargets = "nope.json"\n'}, "registry.targets: "),
    "templates": ({"console": '[console]\ntemplates = "no-templates"\n'}, "console.templates: "),
    "keys": (
        {"cap": '[cap]\ntrusted_certificates = ["missing.pem"]\n'},
        "cap.trusted_certificates: cannot read",
    ),
    "key-pair": ({"cap": '[cap]\nsigning_key = "key.pem"\n'}, "cap: signing_key and"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_check_is_flagged_by_check_config_and_refused_by_serve(
    tmp_path: Path, case: str
) -> None:
    sections, expected = BROKEN[case]
    config = write_config(tmp_path, free_port(), **sections)
    checked = run("check-config", "--config", str(config))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    found = problems(checked.stderr)
    assert any(line.startswith(expected) for line in found), found
    served = run("serve", "--config", str(config))
    assert served.returncode == 1, served.stdout + served.stderr
    assert problems(served.stderr) == found
    assert "not starting until these problems are fixed" in served.stderr
    assert "serving on" not in served.stdout and "Traceback" not in served.stderr
    assert not (tmp_path / "data").exists()


def test_file_secret_readable_by_others_and_busy_port_are_refused(
    tmp_path: Path, busy_port: int
) -> None:
    secret = _secret(tmp_path, 0o644)
    api = f'[[api.tokens]]\nname = "feed"\ntoken = {{ file = "{secret}" }}\n'
    config = write_config(tmp_path, busy_port, api=api)
    checked = run("check-config", "--config", str(config))
    found = problems(checked.stderr)
    assert found == [
        f"api.tokens.0.token: Value error, secret file {secret} has mode 0644: others may read "
        "it or its group may change it; chmod 600 (or 640 for a trusted group)",
        f"server.port: cannot listen on 127.0.0.1:{busy_port}: Address already in use",
    ]
    assert "s3cret-value" not in checked.stdout + checked.stderr
    assert problems(run("serve", "--config", str(config)).stderr) == found
    secret.chmod(0o600)
    assert len(problems(run("check-config", "--config", str(config)).stderr)) == 1


def test_every_problem_is_reported_in_one_run(tmp_path: Path, busy_port: int) -> None:
    sections: dict[str, str] = {}
    for case in ("section", "env-secret", "divisions", "templates", "keys"):
        for name, text in BROKEN[case][0].items():
            sections[name] = sections.get(name, "") + text
    sections["channels"] = (
        '[channels.log]\ntype = "log"\nconcurrency = 0\n[channels.x]\ntype = "?"\n'
    )
    (tmp_path / "bad.json").write_text("[{", encoding="utf-8")
    sections["registry"] = '[registry]\ntargets = "bad.json"\ndivisions = "demo/nope.json"\n'
    config = write_config(tmp_path, busy_port, **sections)
    checked = run("check-config", "--config", str(config))
    found = problems(checked.stderr)
    keys = [line.split(":", 1)[0] for line in found]
    assert keys == [
        "api.tokens.0.token",
        "dispatcher.retry_base_seconds",
        "channels.log.concurrency",
        "channels.x",
        "registry.targets",
        "registry.divisions",
        "console.templates",
        "cap.trusted_certificates",
        "server.port",
    ], checked.stderr
    assert checked.stderr.startswith(f"{config}: 9 problem(s):")
    assert problems(run("serve", "--config", str(config)).stderr) == found


def test_unused_channels_and_unknown_target_channels_are_warnings(tmp_path: Path) -> None:
    channels = (
        '[channels.log]\ntype = "log"\n[channels.spare]\ntype = "log"\n'
        '[channels.push]\ntype = "webpush"\nvapid_subject = "mailto:duty@example.cn"\n'
    )  # push subscribers enrol themselves: no warning for it
    config = write_config(tmp_path, free_port(), channels=channels)
    (tmp_path / "targets.json").write_text(json.dumps(TARGETS), encoding="utf-8")
    checked = run("check-config", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert "configuration is valid (3 channels)" in checked.stdout
    assert checked.stderr.splitlines() == [
        "warning: registry.targets: 1 target(s) name channel 'ghost', which is not configured",
        "warning: channels.spare: no target of the registry uses this channel",
    ]


def test_a_running_server_on_the_data_directory_is_named(tmp_path: Path) -> None:
    from broadcaster.deploy.backup import data_dir_lock

    config = write_config(tmp_path, free_port())
    with data_dir_lock(tmp_path / "data", purpose="serve"):
        found = problems(run("check-config", "--config", str(config)).stderr)
        assert found == [
            f"server.data_dir: a server is running on {tmp_path / 'data'}"
            " (stop it first: systemctl stop broadcaster)"
        ]
        assert problems(run("serve", "--config", str(config)).stderr) == found
    assert run("check-config", "--config", str(config)).returncode == 0


def test_a_channel_entry_that_is_not_a_table_is_reported_once(tmp_path: Path) -> None:
    channels = '[channels]\nspare = "log"\n[channels.push]\ntype = "webpush"\n'
    config = write_config(tmp_path, free_port(), channels=channels)
    found = problems(run("check-config", "--config", str(config)).stderr)
    assert found == [  # the tables are still checked against their plugins
        "channels.spare: must be a table",
        "channels.push.vapid_subject: Field required",
    ]


def test_a_postgresql_store_must_answer_and_its_officers_count(
    tmp_path: Path, pg_server: PgServer
) -> None:
    url = pg_server.migrated()
    unreachable = f'[store]\nurl = "postgresql://broadcaster@127.0.0.1:{free_port()}/none"\n'
    config = write_config(tmp_path, free_port(), store=unreachable)
    down = run("check-config", "--config", str(config))
    assert down.returncode == 1
    (problem,) = problems(down.stderr)
    assert problem.startswith("store.url: cannot connect to PostgreSQL")
    # Reachable, and holding an officer: a short first-admin password is then no problem (with
    # no officer there, or the store read from the data directory, it would be one).
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO officers (username, role, password_hash, created_at,"
            " password_changed_at) VALUES ('chief', 'admin', 'x', 0, 0)"
        )
    config = write_config(tmp_path, free_port(), store=f'[store]\nurl = "{url}"\n')
    env = {**os.environ, "BROADCASTER_ADMIN_PASSWORD": "short"}
    assert broadcaster("check-config", "--config", str(config), env=env).returncode == 0
    pg_server.drop(url)
