"""The SMS preview is what the modems send: text with the sender signature, segments and
encoding per language, and the recipients (numbers, not groups) counted."""

from __future__ import annotations

from pathlib import Path

from drivers.gsm.simulator_network import SimulatedNetwork
from tests.core.previewing import assert_sent_as_previewed, preview_and_send
from tests.core.support import make_config, running

from .conftest import SimulatorFactory, modem_table, sms_channel_table
from .oracle import encodings, received_messages
from .test_sms_service import bilingual_alert, group, numbers

_ENCODINGS = {"UCS-2": "ucs2", "GSM-7": "gsm"}


async def test_preview_equals_what_each_recipient_receives(
    make_simulator: SimulatorFactory, network: SimulatedNetwork, tmp_path: Path
) -> None:
    simulator = make_simulator("sim0")
    table = sms_channel_table([modem_table("m0", simulator.device_path)])
    groups = [
        group("zh", numbers(0, 3)),
        group("both", numbers(3, 2), languages=["zh-CN", "en"]),
        group("en", [*numbers(5, 1), *numbers(0, 1)], languages=["en"]),
    ]
    async with running(make_config(tmp_path, {"sms": table}, groups)) as service:
        outcome = await preview_and_send(service, bilingual_alert("sms-preview"), "sms")
    assert outcome.summary == {"sms": {"confirmed": 9}}
    assert_sent_as_previewed(outcome)
    preview = outcome.preview
    assert (preview.unit, preview.targets) == ("recipients", 6)
    by_language = {c["language"]: c for c in preview.contents}
    zh, en = by_language["zh-CN"], by_language["en"]
    assert zh["text"].startswith("【") and zh["segments"] >= 2 and zh["encoding"] == "UCS-2"
    assert en["encoding"] == "GSM-7"
    # The independent PDU decoder reads what the simulated network got.
    received = received_messages(network.records)
    assert set(received) == set(numbers(0, 6))
    for number in numbers(1, 2):
        assert received[number] == [zh["text"]]
    assert sorted(received[numbers(3, 1)[0]]) == sorted([zh["text"], en["text"]])
    assert sorted(received[numbers(0, 1)[0]]) == sorted([zh["text"], en["text"]])
    per_number = encodings(network.records)
    assert per_number[numbers(1, 1)[0]] == {_ENCODINGS[zh["encoding"]]}
    segments = [r for r in network.records if r.number.lstrip("+") == numbers(1, 1)[0][1:]]
    assert len(segments) == zh["segments"]
