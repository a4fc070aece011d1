"""Hazard templates and the compose form: every template level becomes a CAP alert that the
official OASIS schema accepts; form problems are named by field; faulty templates are refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import xmlschema
from multidict import MultiDict

from broadcaster.areanames import drawn_area_name
from broadcaster.cap import MsgType, Severity, Status, to_xml
from broadcaster.config import ConfigError
from broadcaster.console.compose import build_alert, field_problems, parse_form
from broadcaster.console.hazards import (
    LEVELS,
    default_templates_dir,
    load_templates,
    parse_template,
)
from broadcaster.divisions import DivisionTree
from broadcaster.errors import CapError
from tests.conftest import CAP_XSD
from tests.console.support import COUNTY, DEMO_DIVISIONS

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
HAZARDS = ("暴雨", "暴雪", "寒潮", "大风", "沙尘暴", "冰雹", "道路结冰", "森林草原火险", "地震")


@pytest.fixture(scope="module")
def tree() -> DivisionTree:
    return DivisionTree.load(DEMO_DIVISIONS)


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(CAP_XSD))


def _form(prefill: dict, **extra: str) -> MultiDict[str]:  # type: ignore[type-arg]
    form = [
        (name, prefill[name])
        for name in ("level", "category", "response", "severity", "urgency", "certainty")
    ]
    for language, text in prefill["texts"].items():
        form += [(f"{language}.{k}", v) for k, v in text.items()]
    form += [("lang", "en"), ("division", COUNTY), ("channel", "log"), ("tz_offset", "480")]
    form += [("expires", "2026-11-29T22:00"), ("status", "Actual")]
    return MultiDict([*((k, v) for k, v in form if k not in extra), *extra.items()])


def test_shipped_templates_cover_the_hazards_and_levels() -> None:
    templates = load_templates(default_templates_dir())
    events = {t.event["zh-CN"] for t in templates.values()}
    assert set(HAZARDS) | {"地质灾害", "危化品泄漏"} <= events
    for template in templates.values():
        assert list(template.levels) == list(LEVELS)
        red = template.prefill("red", "卓资县")
        assert red["severity"] == "Extreme"
        assert red["texts"]["zh-CN"]["headline"] == f"卓资县{template.event['zh-CN']}红色预警"
        assert template.prefill("blue", "x")["severity"] == "Minor"
        english = red["texts"]["en"]["headline"]
        assert english.startswith("Red ") and english.endswith(" warning") and english.isascii()


def test_every_template_level_makes_a_schema_valid_alert(
    tree: DivisionTree, schema: xmlschema.XMLSchema
) -> None:
    for template in load_templates(default_templates_dir()).values():
        for level in LEVELS:
            draft = parse_form(_form(template.prefill(level, "卓资县")), now=NOW, divisions=tree)
            assert draft.problems == [], (template.code, level, draft.problems)
            alert = build_alert(
                draft,
                sender="ulanqab.emergency@example.cn",
                sender_name="乌兰察布市应急管理局",
                divisions=tree,
                now=NOW,
                identifier=f"t-{template.code}-{level}",
            )
            assert field_problems(alert, draft) == []
            schema.validate(to_xml(alert).decode())
            assert [i.language for i in alert.infos] == ["zh-CN", "en"]
            assert alert.infos[0].areas[0].area_desc == "卓资县"
            assert alert.infos[0].expires == datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
            colour = {p.value_name: p.value for p in alert.infos[0].parameters}["预警颜色"]
            assert colour.endswith("色")


def test_form_problems_are_named_by_field(tree: DivisionTree) -> None:
    template = load_templates(default_templates_dir())["gale"]
    given = _form(template.prefill("yellow", "x"), certainty="Sure", polygon="41,112 x")
    form = MultiDict((k, v) for k, v in given.items() if k not in ("zh-CN.headline", "channel"))
    form["division"] = "999"
    draft = parse_form(form, now=NOW, divisions=tree)
    problems = {p.path: p.message for p in draft.problems}
    assert "zh-CN.headline" in problems and "certainty" in problems
    assert "polygon" in problems and "channel" in problems
    assert "division" in problems


@pytest.mark.parametrize("effective", ["2026-11-29T22:00", "2026-11-29T23:00"])
def test_expiry_not_after_effective_is_refused_with_the_core_message(
    tree: DivisionTree, effective: str
) -> None:
    template = load_templates(default_templates_dir())["gale"]
    form = _form(template.prefill("yellow", "x"), effective=effective)
    draft = parse_form(form, now=NOW, divisions=tree)
    assert draft.problems == []
    alert = build_alert(
        draft, sender="a@b.cn", sender_name="", divisions=tree, now=NOW, identifier="late"
    )
    shown = [p for p in field_problems(alert, draft) if p.severity == "error"]
    assert len(shown) == len(alert.infos) == 2  # one per language, both on the expiry field
    assert {(p.path, p.rule) for p in shown} == {("expires", "expires-after-effective")}
    assert shown[0].message.startswith(
        "expires 2026-11-29T22:00:00+08:00 is not later than effective"
    )
    # The API refuses the same alert with the very same sentences.
    with pytest.raises(CapError) as caught:
        to_xml(alert)
    assert [p.message for p in caught.value.problems] == [p.message for p in shown]


def test_update_references_the_original_and_polygons_close(tree: DivisionTree) -> None:
    template = load_templates(default_templates_dir())["hail"]
    form = _form(template.prefill("orange", "x"), polygon="41.0,112.0 41.0,112.5 41.4,112.2")
    draft = parse_form(form, now=NOW, divisions=tree)
    original = build_alert(
        draft, sender="a@b.cn", sender_name="", divisions=tree, now=NOW, identifier="one"
    )
    points = original.infos[0].areas[0].polygons[0].points
    assert len(points) == 4 and points[0] == points[-1]
    update = build_alert(
        draft,
        sender="a@b.cn",
        sender_name="",
        divisions=tree,
        now=NOW,
        identifier="two",
        updates=original,
    )
    assert update.msg_type is MsgType.UPDATE and update.references == [original.reference]
    assert update.status is Status.ACTUAL and update.infos[0].severity is Severity.SEVERE


def test_a_faulty_template_is_refused_naming_the_key(tmp_path: Path) -> None:
    good = (default_templates_dir() / "01-rainstorm.toml").read_text(encoding="utf-8")
    (tmp_path / "bad.toml").write_text(
        good.replace('urgency = "Immediate"', 'urgency = "Soon"'), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"levels\.red\.urgency"):
        load_templates(tmp_path)
    with pytest.raises(ConfigError, match="levels"):
        parse_template({"code": "x", "event": {"zh-CN": "x"}, "levels": {}}, "inline")
    with pytest.raises(ConfigError, match="does not exist"):
        load_templates(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no hazard templates"):
        load_templates(tmp_path / "empty")


ZHUOZI_SEAT = (40.893, 112.571)


def _square(centre: tuple[float, float], half: float) -> str:
    lat, lon = centre
    corners = [(-half, -half), (-half, half), (half, half), (half, -half)]
    return " ".join(f"{lat + a},{lon + b}" for a, b in corners)


def test_a_drawn_area_is_named_after_the_counties_it_covers(tree: DivisionTree) -> None:
    template = load_templates(default_templates_dir())["gale"]
    prefill = template.prefill("blue", "卓资县、凉城县部分地区")
    form = _form(prefill, polygon=_square(ZHUOZI_SEAT, 0.3))
    del form["division"]
    draft = parse_form(form, now=NOW, divisions=tree)
    assert draft.problems == []
    alert = build_alert(
        draft, sender="a@b.cn", sender_name="", divisions=tree, now=NOW, identifier="drawn"
    )
    assert alert.infos[0].areas[0].area_desc == "卓资县、凉城县部分地区"
    assert alert.infos[0].headline == "卓资县、凉城县部分地区大风蓝色预警"


def test_a_drawn_area_without_a_county_needs_a_typed_headline(tree: DivisionTree) -> None:
    template = load_templates(default_templates_dir())["gale"]
    form = _form(template.prefill("blue", "{area}"), polygon=_square((30.0, 100.0), 0.1))
    del form["division"]
    draft = parse_form(form, now=NOW, divisions=tree)
    problems = {p.path: p.message for p in draft.problems}
    assert "type where the warning is for" in problems["zh-CN.headline"]


def test_area_names_whole_partial_and_city(tree: DivisionTree) -> None:
    assert drawn_area_name(tree, _polygon_points(_square(ZHUOZI_SEAT, 0.3))) == (
        "卓资县、凉城县部分地区"
    )
    everything = _polygon_points(_square((41.5, 112.5), 4.0))
    assert drawn_area_name(tree, everything) == "乌兰察布市"
    zhuozi = [tree.require(COUNTY), *tree.descendants(COUNTY)]
    lats, lons = [d.lat for d in zhuozi], [d.lon for d in zhuozi]
    box = [
        (min(lats) - 0.001, min(lons) - 0.001),
        (min(lats) - 0.001, max(lons) + 0.001),
        (max(lats) + 0.001, max(lons) + 0.001),
        (max(lats) + 0.001, min(lons) - 0.001),
    ]
    name = drawn_area_name(tree, box)
    assert name.startswith("卓资县及") and name.endswith("部分地区")
    assert drawn_area_name(tree, [(30.0, 100.0), (30.0, 100.1), (30.1, 100.1)]) == ""
    assert drawn_area_name(tree, [(41.0, 112.0), (41.0, 112.0), (41.0, 112.0)]) == ""


def _polygon_points(text: str) -> list[tuple[float, float]]:
    return [(float(p.split(",")[0]), float(p.split(",")[1])) for p in text.split()]
