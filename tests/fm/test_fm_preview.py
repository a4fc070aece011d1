"""The FM preview is what the encoders show: PS, RT and PTY per transmitter, counted in
transmitters, read back from the simulated encoders."""

from __future__ import annotations

from pathlib import Path

from channels.fm import FmChannel
from tests.core.previewing import assert_sent_as_previewed, preview_and_send
from tests.core.support import COUNTY, OTHER_COUNTY, make_alert, running
from tests.fm.conftest import fm_config, fm_table, fm_target


async def test_preview_equals_what_each_encoder_shows(tmp_path: Path, sink: Path) -> None:
    table = fm_table(sink, {}, simulate=True)
    targets = [fm_target(), fm_target("fm-150922", "tx-150922", OTHER_COUNTY)]
    alert = make_alert("fm-preview", geocodes=(COUNTY, OTHER_COUNTY))
    async with running(fm_config(tmp_path, table, targets)) as service:
        outcome = await preview_and_send(service, alert, "fm")
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
