"""The shipped hazard templates carry Mongolian (traditional script) texts for every hazard and
level, marked for a native speaker's review, and the clip manifest lists the Mongolian phrases
to record for warnings assembled from clips."""

from __future__ import annotations

import json

from audio.clips import DEFAULT_LIBRARY, MANIFEST_NAME, ClipLibrary
from broadcaster.console.hazards import LEVELS, default_templates_dir, load_templates
from broadcaster.publisher import hazard_of


def _mongolian_script(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and all(0x1800 <= ord(c) <= 0x18AF for c in letters)


def test_every_template_level_has_mongolian_texts_marked_for_review() -> None:
    templates = load_templates(default_templates_dir())
    assert len(templates) == 12
    for template in templates.values():
        assert "native speaker" in template.review["mn-Mong"], template.code
        assert _mongolian_script(template.event["mn"]), template.code
        for level in LEVELS:
            texts = template.prefill(level, "集宁区")["texts"]["mn"]
            for field in ("headline", "description", "instruction"):
                assert _mongolian_script(texts[field]), (template.code, level, field)


def test_the_manifest_lists_every_mongolian_phrase_to_record() -> None:
    document = json.loads((DEFAULT_LIBRARY / MANIFEST_NAME).read_text("utf-8"))
    wanted = document["wanted"]
    assert all(w["language"] == "mn-Mong" and _mongolian_script(w["text"]) for w in wanted)
    templates = load_templates(default_templates_dir()).values()
    hazards = {hazard_of(t.event["zh-CN"]) for t in templates}
    assert {w["hazard"] for w in wanted if w["kind"] == "hazard"} == hazards
    assert {w["level"] for w in wanted if w["kind"] == "level"} == set(LEVELS)
    places = {w["place"] for w in wanted if w["kind"] == "place"}
    assert {"150926", "150927", "150928", "150929"} <= places and len(places) == 11
    assert len([w for w in wanted if w["kind"] == "instruction"]) == 4 * len(hazards)
    assert ClipLibrary(DEFAULT_LIBRARY).verify() == []
