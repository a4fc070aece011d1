"""The channel guide stays true: its sample CAP file is valid, and it names every geocode
valueName the planner accepts and every rule the contract suite enforces."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broadcaster.cap.parse import parse_cap
from broadcaster.planner import DIVISION_VALUE_NAMES
from tests.contract.test_contract_catches import BROKEN_RULES

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "writing-a-channel.md"


def test_the_sample_alert_is_valid_cap() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    xml = text[text.index("<?xml") : text.index("</alert>") + len("</alert>")]
    now = datetime.now(UTC).replace(microsecond=0)
    xml = re.sub(r"<sent>[^<]+</sent>", f"<sent>{now.isoformat()}</sent>", xml)
    later = (now + timedelta(hours=12)).isoformat()
    xml = re.sub(r"<expires>[^<]+</expires>", f"<expires>{later}</expires>", xml)
    parsed = parse_cap(xml.encode())
    assert parsed.alert.infos[0].areas[0].geocodes[0].value == "150921"


def test_it_names_every_value_name_and_rule() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    assert {n for n in DIVISION_VALUE_NAMES if f"`{n}`" not in text.lower()} == set()
    assert {r for r in BROKEN_RULES.values() if f"`{r}`" not in text} == set()
