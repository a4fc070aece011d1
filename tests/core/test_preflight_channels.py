"""The files a channel names (box keys, subscriber groups, VAPID keys) are checked by the
plugin's ``preflight`` before serve binds its port: check-config flags a broken one with its
key and serve refuses to start with the same line, instead of failing once channels start."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from broadcaster.channel import Channel, SendResult
from broadcaster.config import ChannelConfig, Config
from broadcaster.plugins import check_channel_configs
from tests.core.test_preflight import free_port, problems, run, write_config

GOOD_CSV = "group,name,division,number\ng1,村1,150921001001,+8613800471001\n"
VAPID_SUBJECT = 'vapid_subject = "mailto:duty@example.cn"\n'

# case: (channel table with {dir} for the test folder, files to write there, expected line)
BROKEN: dict[str, tuple[str, dict[str, str], str]] = {
    "box-keys-not-json": (
        'type = "loudspeaker"\nkey_file = "{dir}/keys.json"\n',
        {"keys.json": "{box"},
        "channels.c.key_file: {dir}/keys.json is not valid JSON: ",
    ),
    "box-key-not-hex": (
        'type = "loudspeaker"\nkey_file = "{dir}/keys.json"\n',
        {"keys.json": '{"box-1": "zz"}'},
        "channels.c.key_file: key of box 'box-1' is not hex",
    ),
    "box-keys-missing-in-data-dir": (
        'type = "loudspeaker"\nkey_file = "keys.json"\n',
        {},
        "channels.c.key_file: cannot read {dir}/data/keys.json: No such file or directory",
    ),
    "groups-missing-column": (
        'type = "sms"\nsimulate = true\ngroups_csv = "{dir}/groups.csv"\n',
        {"groups.csv": "group,name\ng1,村1\n"},
        "channels.c.groups_csv: {dir}/groups.csv: missing columns ['division', 'number']",
    ),
    "groups-no-valid-number": (
        'type = "sms"\nsimulate = true\ngroups_csv = "{dir}/groups.csv"\n',
        {"groups.csv": "group,name,division,number\ng1,村1,150921001001,12ab\n"},
        "channels.c.groups_csv: {dir}/groups.csv: no group with a valid number; line 2: ",
    ),
    "fm-player-missing": (
        'type = "fm"\nplayer = ["no-such-fm-player", "{{file}}"]\n',
        {},
        "channels.c.player: FM player command 'no-such-fm-player' is not installed or not on PATH",
    ),
    "vapid-key-inline": (
        'type = "webpush"\n' + VAPID_SUBJECT + 'vapid_private_key = "-----BEGIN nothing"\n',
        {},
        "channels.c.vapid_private_key: the VAPID key is not a readable PEM private key",
    ),
    "vapid-key-stored": (
        'type = "webpush"\n' + VAPID_SUBJECT + 'vapid_key_file = "{dir}/vapid.pem"\n',
        {"vapid.pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
        "channels.c.vapid_key_file: {dir}/vapid.pem: the VAPID key is not a readable PEM",
    ),
}


def _channel_config(folder: Path, table: str, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    channels = '[channels.log]\ntype = "log"\n[channels.c]\n' + table.format(dir=folder)
    return write_config(folder, free_port(), channels=channels)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_channel_file_is_flagged_and_refused_with_its_key(
    tmp_path: Path, case: str
) -> None:
    table, files, expected = BROKEN[case]
    config = _channel_config(tmp_path, table, files)
    checked = run("check-config", "--config", str(config))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    found = problems(checked.stderr)
    assert len(found) == 1 and found[0].startswith(expected.format(dir=tmp_path)), found
    served = run("serve", "--config", str(config))
    assert served.returncode == 1, served.stdout + served.stderr
    assert problems(served.stderr) == found
    assert "serving on" not in served.stdout and "Traceback" not in served.stderr
    assert not (tmp_path / "data").exists()


def test_good_channel_files_pass_and_nothing_is_created(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    files = {"keys.json": '{"box-1": "' + "ab" * 16 + '"}', "groups.csv": GOOD_CSV}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "vapid.pem").write_text(pem, encoding="ascii")
    channels = (
        f'[channels.log]\ntype = "log"\n'
        f'[channels.speakers]\ntype = "loudspeaker"\nkey_file = "{tmp_path}/keys.json"\n'
        f'[channels.sms]\ntype = "sms"\nsimulate = true\ngroups_csv = "{tmp_path}/groups.csv"\n'
        f'[channels.push]\ntype = "webpush"\n{VAPID_SUBJECT}'
        f'vapid_key_file = "{tmp_path}/vapid.pem"\n'
        f'[channels.fresh]\ntype = "webpush"\n{VAPID_SUBJECT}'  # key made on first start
    )
    config = write_config(tmp_path, free_port(), channels=channels)
    checked = run("check-config", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert problems(checked.stderr) == []
    assert not (tmp_path / "data").exists()


class _FailingCheckChannel(Channel):
    @classmethod
    def preflight(cls, name: str, config: ChannelConfig, data_dir: Path) -> list[str]:
        raise RuntimeError("plugin bug")

    async def send(self, delivery: object) -> SendResult:  # type: ignore[override]
        raise NotImplementedError


def test_a_plugin_whose_check_raises_is_one_problem_not_a_crash(tmp_path: Path) -> None:
    kind = f"{__name__}:_FailingCheckChannel"
    config = Config.model_validate({"channels": {"odd": {"type": kind}, "log": {"type": "log"}}})
    assert check_channel_configs(config, tmp_path) == [
        "channels.odd: the plugin's file check failed: RuntimeError('plugin bug')"
    ]
