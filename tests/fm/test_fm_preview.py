"""The FM preview is what the encoders show: PS, RT and PTY per transmitter, counted in
transmitters, read back from the simulated encoders; and the audio each transmitter airs, in
every language it speaks, rendered without playing anything and then aired sample for sample."""

from __future__ import annotations

import hashlib
import wave
from pathlib import Path

from channels.fm import FmChannel
from tests.bilingual import alert
from tests.core.previewing import assert_sent_as_previewed, preview_and_send
from tests.core.support import COUNTY, OTHER_COUNTY, make_alert, running, wait_until_complete
from tests.fm.conftest import fm_config, fm_table, fm_target

GEOCODES = (COUNTY, OTHER_COUNTY)


async def test_preview_equals_what_each_encoder_shows(tmp_path: Path, sink: Path) -> None:
    table = fm_table(sink, {}, simulate=True)
    targets = [fm_target(), fm_target("fm-150922", "tx-150922", OTHER_COUNTY)]
    sent = make_alert("fm-preview", geocodes=GEOCODES)
    async with running(fm_config(tmp_path, table, targets)) as service:
        outcome = await preview_and_send(service, sent, "fm")
        channel = service.channels["fm"]
        assert isinstance(channel, FmChannel)
        simulators = channel.simulators()
    assert outcome.summary == {"fm": {"confirmed": 2}}
    assert_sent_as_previewed(outcome)
    assert (outcome.preview.unit, outcome.preview.targets) == ("transmitters", 2)
    rt = "SNOWSTORM WARNING ORANGE - LISTEN NOW"  # RDS has no Chinese: the Latin fallback
    assert outcome.preview.contents == ({"ps": "ALERT", "rt": rt, "pty": 31},)
    by_target = {row["target_id"]: row["content"] for row in outcome.rows}
    for target, transmitter in (("fm-150921", "tx-150921"), ("fm-150922", "tx-150922")):
        content = by_target[target]
        shown = [s for s in simulators[transmitter].history if s.ta]
        assert shown, f"{transmitter} never raised TA"
        on_air = shown[-1]
        assert (on_air.ps or "").rstrip() == content["ps"].rstrip()
        assert (on_air.rt, on_air.pty) == (content["rt"], content["pty"])


async def test_the_preview_renders_each_programme_the_transmitters_air_and_plays_nothing(
    tmp_path: Path, sink: Path
) -> None:
    both = fm_target() | {"languages": ["zh-CN", "mn"]}
    chinese = fm_target("fm-150922", "tx-150922", OTHER_COUNTY)
    table = fm_table(sink, {}, simulate=True)
    recorded = alert("fm-preview-bilingual", "zh+mn", with_recording=True, geocodes=GEOCODES)
    async with running(fm_config(tmp_path, table, [both, chinese])) as service:
        preview = (await service.preview(recorded, channels=["fm"]))["fm"]
        assert list(sink.iterdir()) == [], "the preview played audio"
        result = await service.submit(recorded, origin="test", channels=["fm"])
        summary = await wait_until_complete(service, result.alert_id, timeout=120)
        rows = await service.database.run(service.outbox.deliveries, result.alert_id)
    assert summary == {"fm": {"confirmed": 2}}
    spoken = {tuple(p.language for p in a.spoken): a for a in preview.audio}
    assert sorted(spoken) == [("zh-CN",), ("zh-CN", "mn-Mong")]
    assert all(a.targets == 1 and a.content_type == "audio/wav" for a in preview.audio)
    chinese_part, mongolian_part = spoken[("zh-CN", "mn-Mong")].spoken
    assert 0 < chinese_part.start_s < chinese_part.end_s < mongolian_part.start_s
    aired = {row["target_id"]: _frames(sink / f"{row['id']}.wav") for row in rows}
    for target, languages in (("fm-150921", ("zh-CN", "mn-Mong")), ("fm-150922", ("zh-CN",))):
        heard = spoken[languages]
        assert hashlib.sha256(heard.path.read_bytes()).hexdigest() == heard.sha256
        assert aired[target] == _frames(heard.path), f"{target} aired other audio"


def _frames(path: Path) -> bytes:
    """The samples of a WAV file (the player copies the stream into a new container)."""
    with wave.open(str(path), "rb") as wav:
        return wav.readframes(wav.getnframes())
