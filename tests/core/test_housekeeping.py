"""Daily upkeep: renders and uploaded recordings unused for [audio] keep_days are deleted,
and every channel gets its housekeeping call, at start and then once a day."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from broadcaster.channel import ChannelContext
from broadcaster.config import ChannelConfig
from broadcaster.housekeeping import Housekeeping
from broadcaster.publisher import AudioPublisher
from tests.core.support import TidyChannel, make_config, running, village_targets


def _entry(root: Path, kind: str, name: str, age_days: float) -> Path:
    entry = root / kind / name
    entry.mkdir(parents=True)
    (entry / "meta.json").write_text("{}")
    then = time.time() - age_days * 86400
    os.utime(entry, (then, then))
    return entry


async def test_stale_renders_go_and_channels_are_tidied_on_start(tmp_path: Path) -> None:
    channels = {"tidy": {"type": "tests.core.support:TidyChannel"}}
    config = make_config(tmp_path, channels, village_targets("tidy", 1))
    audio = tmp_path / "data" / "audio"
    stale = _entry(audio, "renders", "a" * 64, age_days=40)
    recent = _entry(audio, "renders", "b" * 64, age_days=3)
    uploads = tmp_path / "data" / "uploads"
    uploads.mkdir(parents=True)
    old_upload = uploads / ("d" * 64)
    old_upload.write_bytes(b"a recording nobody used for 40 days")
    then = time.time() - 40 * 86400
    os.utime(old_upload, (then, then))
    new_upload = uploads / ("e" * 64)
    new_upload.write_bytes(b"a recording of today")
    TidyChannel.housekeeping_calls = 0
    TidyChannel.tidied = asyncio.Event()
    async with running(config):
        async with asyncio.timeout(10):
            await TidyChannel.tidied.wait()
        assert not stale.exists() and recent.exists()
        assert not old_upload.exists() and new_upload.exists()
    assert TidyChannel.housekeeping_calls == 1  # the next round is a day away


class BrokenChannel(TidyChannel):
    async def housekeeping(self) -> None:
        raise OSError("disk gone")


async def test_a_failing_channel_does_not_stop_the_others(tmp_path: Path, caplog) -> None:
    context = ChannelContext(data_dir=tmp_path, sender_name="", public_url="http://x")
    channels = {
        name: kind(name, ChannelConfig(type=name), context)
        for name, kind in (("broken", BrokenChannel), ("tidy", TidyChannel))
    }
    TidyChannel.housekeeping_calls = 0
    stale = _entry(tmp_path / "audio", "speech", "c" * 64, age_days=40)
    upkeep = Housekeeping(AudioPublisher(tmp_path / "audio"), channels)
    assert await upkeep.run_once() == 1
    assert TidyChannel.housekeeping_calls == 1 and not stale.exists()
    assert "housekeeping of channel broken failed" in caplog.text
