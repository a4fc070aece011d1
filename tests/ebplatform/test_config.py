"""The ebplatform configuration is checked before the server starts: a key others can read or a
missing trust list is a problem of the channel's ``preflight`` (which ``check-config`` and
``serve`` report with the key), a malformed value is refused when the table is validated."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pydantic
import pytest

from broadcaster.testing.contract import channel_context
from broadcaster.testing.targets import MemoryTargets
from channels.ebplatform import EbPlatformChannel
from channels.ebplatform.config import EbPlatformChannelConfig
from tests.ebplatform.conftest import HUADE_EBRID, OURS, Pki


def _table(folder: Path, pki: Pki) -> dict[str, Any]:
    key = folder / "key.pem"
    shutil.copy(pki.ours.key, key)
    key.chmod(0o600)
    peer = {"name": "huade", "ebrid": HUADE_EBRID, "url": "http://127.0.0.1:9/ebd"}
    return {
        "type": "ebplatform",
        "local_ebrid": OURS,
        "signing_key_file": str(key),
        "cert_id": pki.ours.cert_id,
        "trust": [str(pki.trust)],
        "peers": [peer | {"areas": ["150922"]}],
    }


def _preflight(folder: Path, table: dict[str, Any]) -> list[str]:
    config = EbPlatformChannelConfig.model_validate(table)
    return EbPlatformChannel.preflight("eb", config, folder / "data")


def test_key_and_trust_are_checked_before_start(tmp_path: Path, pki: Pki) -> None:
    table = _table(tmp_path, pki)
    assert _preflight(tmp_path, table) == []
    (found,) = _preflight(tmp_path, table | {"trust": ["missing-folder/peer.pem"]})
    assert found.startswith("signing_key_file/trust: ") and "missing-folder" in found
    relative = table | {"signing_key_file": "key.pem"}  # relative to the data directory
    (found,) = _preflight(tmp_path, relative)
    assert str(tmp_path / "data" / "key.pem") in found
    (tmp_path / "key.pem").chmod(0o644)
    (found,) = _preflight(tmp_path, table)
    assert "readable by group or others" in found


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"local_ebrid": "12345"}, "local_ebrid"),
        ({"cert_id": "xyz"}, "cert_id"),
        ({"allow_from": ["not-a-network"]}, "allow_from"),
        ({"trust": []}, "trust"),
        ({"peers": [{"name": "a", "ebrid": OURS, "url": "ftp://x", "areas": []}]}, "peers"),
        ({"peers": [{"name": "a", "ebrid": OURS, "url": "http://x", "areas": ["1509"]}]}, "peers"),
        ({"upper": {"ebrid": OURS, "policy": "maybe"}}, "upper"),
    ],
)
def test_malformed_values_are_refused_naming_the_key(
    tmp_path: Path, pki: Pki, change: dict[str, Any], key: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        EbPlatformChannelConfig.model_validate(_table(tmp_path, pki) | change)
    assert caught.value.errors()[0]["loc"][0] == key


async def test_targets_follow_the_configured_peers(tmp_path: Path, pki: Pki) -> None:
    directory = MemoryTargets()
    context = replace(channel_context(tmp_path / "data"), targets=directory)
    table = _table(tmp_path, pki)
    two = table | {"peers": [table["peers"][0] | {"areas": ["150922", "150922001"]}]}
    for peers, expected in (
        (two["peers"], ["eb:huade:150922", "eb:huade:150922001"]),
        (table["peers"], ["eb:huade:150922"]),
    ):
        config = EbPlatformChannelConfig.model_validate(table | {"peers": peers})
        channel = EbPlatformChannel("eb", config, context)
        await channel.start()
        await channel.stop()
        assert [t.id for t in await directory.all()] == expected
    (target,) = await directory.all()
    assert (target.address, target.division) == ("huade", "150922000000")
