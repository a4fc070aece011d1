"""Bilingual warnings on FM transmitters through the real core, channel and encoder
simulators: each transmitter airs one programme of its languages in its order; a language
nothing can voice is left out with a warning on the delivery, and the Mongolian recording an
alert carries is found in the audio played into the transmitter (cross-correlation)."""

from __future__ import annotations

from pathlib import Path

from audio.pcm import decode
from broadcaster.service import BroadcasterService
from drivers.rds import RdsEncoderSimulator
from tests.bilingual import alert, recording_at
from tests.core.support import OTHER_COUNTY, running, wait_until_complete
from tests.fm.conftest import NORMAL, fm_config, fm_table, fm_target


async def _rows(service: BroadcasterService, alert_id: str) -> dict[str, dict[str, object]]:
    rows = await service.database.run(service.outbox.deliveries, alert_id)
    return {str(row["target_id"]): row for row in rows}


async def test_transmitters_air_every_language_they_can_and_name_the_rest(
    tmp_path: Path, sink: Path
) -> None:
    async with (
        RdsEncoderSimulator(initial=NORMAL) as both_sim,
        RdsEncoderSimulator(initial=NORMAL) as mn_sim,
    ):
        encoders = {"tx-both": await both_sim.start_tcp(), "tx-mn": await mn_sim.start_tcp()}
        both = fm_target("fm-both", "tx-both") | {"languages": ["zh-CN", "mn"]}
        mn_only = fm_target("fm-mn", "tx-mn") | {"languages": ["mn"]}
        elsewhere = fm_target("fm-other", "tx-mn", OTHER_COUNTY)
        config = fm_config(tmp_path, fm_table(sink, encoders), [both, mn_only, elsewhere])
        async with running(config) as service:
            silent = await service.submit(alert("fm-no-voice", "zh+mn"), origin="test")
            silent_summary = await wait_until_complete(service, silent.alert_id, timeout=120)
            silent_rows = await _rows(service, silent.alert_id)
            recorded = alert("fm-recorded", "zh+mn", with_recording=True)
            spoken = await service.submit(recorded, origin="test")
            spoken_summary = await wait_until_complete(service, spoken.alert_id, timeout=120)
            spoken_rows = await _rows(service, spoken.alert_id)

    assert silent_summary == {"fm": {"confirmed": 2}}
    for row in silent_rows.values():
        assert str(row["warning"]).startswith("Mongolian speech not available (mn-Mong)")
    chinese = {t: decode(sink / f"{row['id']}.wav").size for t, row in silent_rows.items()}
    assert chinese["fm-both"] == chinese["fm-mn"], "both air the Chinese programme"

    assert spoken_summary == {"fm": {"confirmed": 2}}
    assert all(row["warning"] is None for row in spoken_rows.values())
    at_both, score_both = recording_at(sink / f"{spoken_rows['fm-both']['id']}.wav")
    at_mn, score_mn = recording_at(sink / f"{spoken_rows['fm-mn']['id']}.wav")
    assert score_both > 0.9 and score_mn > 0.9
    assert at_mn < 15.0 < at_both, "Mongolian alone first; after the Chinese where both air"
    assert decode(sink / f"{spoken_rows['fm-both']['id']}.wav").size > chinese["fm-both"]
