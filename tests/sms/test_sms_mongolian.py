"""Mongolian in the traditional script by SMS through the real service, channel and a modem
simulator: UCS-2 (every letter, the Mongolian vowel separator U+180E and the narrow no-break
space U+202F intact) in as many segments as 3GPP TS 23.040 says (70 UTF-16 units alone, 67
per part of a concatenated message), read back by the independent decoder smspdudecoder."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from drivers.gsm.simulator_network import SimulatedNetwork
from tests.bilingual import alert
from tests.core.support import make_config, running, wait_until_complete

from .conftest import SimulatorFactory, modem_table, sms_channel_table
from .oracle import encodings, received_messages
from .test_sms_service import group, numbers, sms_channel

LONG = "ᠭᠡᠷ\u202fᠲᠦ ᠪᠠᠨ ᠪᠠᠢᠭᠠᠷᠠᠢ᠃ " + "ᠮᠠᠨᠠᠭᠠᠳᠤᠷ ᠶᠡᠬᠡ ᠴᠠᠰᠤ ᠣᠷᠣᠨ᠎ᠠ᠃ " * 12


async def test_mongolian_script_arrives_in_ucs2_with_the_right_segment_count(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0")
    herders = numbers(0, 2)
    groups = [group("herders", herders, languages=["mn"])]
    modems = [modem_table("m0", simulator.device_path)]
    config = make_config(tmp_path, {"sms": sms_channel_table(modems)}, groups)
    bilingual = alert("sms-mongolian", "zh+mn")
    bilingual.infos[1] = replace(bilingual.infos[1], description=LONG)
    async with running(config) as service:
        result = await service.submit(bilingual, origin="test")
        summary = await wait_until_complete(service, result.alert_id, timeout=30)
        message = await service.dispatcher.message(result.alert_id)
        mongolian = sms_channel(service).render(message, ("mn",))

    assert summary == {"sms": {"confirmed": 2}}
    assert mongolian.encoding.name == "UCS2"
    assert "ᠴᠠᠰᠤᠨ ᠰᠢᠭᠤᠷᠭ\u180eᠠ" in mongolian.text and "ᠭᠡᠷ\u202fᠲᠦ" in mongolian.text
    # Cut at a Mongolian full stop, as Chinese text is cut at 。, not inside a word.
    assert "ᠣᠷᠣᠨ\u180eᠠ᠃\n" in mongolian.text and "…" not in mongolian.text
    units = len(mongolian.text.encode("utf-16-le")) // 2
    assert units > 70 and mongolian.segments == math.ceil(units / 67)
    received = received_messages(network.records)
    for number in herders:
        assert received[number] == [mongolian.text]
        assert encodings(network.records)[number] == {"ucs2"}
    assert len(network.records) == 2 * mongolian.segments
