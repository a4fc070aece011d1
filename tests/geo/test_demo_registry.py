"""The Ulanqab demo registry in ``config/demo``: real top, generated rest, consistent throughout."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from broadcaster.divisions import DivisionTree, code_level, covers, normalize_code
from broadcaster.geo import PointIndex, haversine_km

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo"

REAL_COUNTIES = {
    "150902000000": "集宁区",
    "150921000000": "卓资县",
    "150922000000": "化德县",
    "150923000000": "商都县",
    "150924000000": "兴和县",
    "150925000000": "凉城县",
    "150926000000": "察哈尔右翼前旗",
    "150927000000": "察哈尔右翼中旗",
    "150928000000": "察哈尔右翼后旗",
    "150929000000": "四子王旗",
    "150981000000": "丰镇市",
}
CHANNELS = {"log", "webhook", "loudspeaker", "sms", "fm", "webpush"}


@pytest.fixture(scope="module")
def tree() -> DivisionTree:
    return DivisionTree.load(DEMO / "divisions.json")


@pytest.fixture(scope="module")
def targets() -> list[dict[str, Any]]:
    data = json.loads((DEMO / "targets.json").read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


def test_real_top_of_the_tree(tree: DivisionTree) -> None:
    (city,) = tree.roots()
    assert (city.code, city.name, city.level, city.generated) == (
        "150900000000",
        "乌兰察布市",
        "city",
        False,
    )
    counties = tree.children(city.code)
    assert {d.code: d.name for d in counties} == REAL_COUNTIES
    assert all(d.level == "county" and not d.generated for d in counties)
    # Seats lie in Ulanqab, south of 42° N and between 111.5° and 114.5° E.
    for county in counties:
        assert 40.3 < county.lat < 42.0 and 111.5 < county.lon < 114.1, county.name
    assert tree.require("150929").name_mn == "ᠳᠥᠷᠪᠡᠳ ᠬᠣᠰᠢᠭᠤ"


def test_generated_levels_have_the_promised_shape(tree: DivisionTree) -> None:
    for county in tree.children("150900"):
        townships = tree.children(county.code)
        assert 4 <= len(townships) <= 8, county.name
        for number, township in enumerate(townships, start=1):
            assert township.code == f"{county.code[:6]}{number:03d}000"
            assert township.generated and township.level == "township"
            villages = tree.children(township.code)
            assert 10 <= len(villages) <= 20, township.name
            assert len({v.name for v in villages}) == len(villages)
            for village in villages:
                assert village.generated and village.level == "village"
                assert covers(township.code, village.code)
                assert covers(county.code, village.code)
                assert not covers(village.code, township.code)
                # Villages lie near their township, townships within reach of the seat.
                assert haversine_km(township.lat, township.lon, village.lat, village.lon) < 45
            assert haversine_km(county.lat, county.lon, township.lat, township.lon) < 200


def test_every_code_is_canonical_and_consistent(tree: DivisionTree) -> None:
    for division in tree:
        assert normalize_code(division.code) == division.code
        assert code_level(division.code) == division.level
        if division.parent is not None:
            assert tree.ancestors(division.code)[0].code == "150900000000"
            assert covers(division.parent, division.code)


def test_targets_are_well_formed(tree: DivisionTree, targets: list[dict[str, Any]]) -> None:
    keys = {"id", "channel", "name", "division", "lat", "lon", "address", "languages"}
    ids = [target["id"] for target in targets]
    assert len(ids) == len(set(ids))
    for target in targets:
        assert set(target) == keys, target["id"]
        assert target["channel"] in CHANNELS
        assert target["division"] in tree, target["id"]
        assert target["name"] and target["address"]
        assert set(target["languages"]) <= {"zh-CN", "mn"} and "zh-CN" in target["languages"]
        division = tree.require(target["division"])
        assert haversine_km(division.lat, division.lon, target["lat"], target["lon"]) < 1.0


def test_one_target_per_place_and_channel(
    tree: DivisionTree, targets: list[dict[str, Any]]
) -> None:
    by_channel: dict[str, Counter[str]] = {}
    for target in targets:
        by_channel.setdefault(target["channel"], Counter())[target["division"]] += 1
    levels: dict[str, str] = {"loudspeaker": "village", "log": "village", "sms": "township"}
    levels["fm"] = "county"
    assert set(by_channel) == set(levels)
    for channel, level in levels.items():
        expected = {d.code for d in tree if d.level == level}
        assert set(by_channel[channel]) == expected, channel
        assert set(by_channel[channel].values()) == {1}, channel


def test_sms_groups_hold_one_unassignable_number_per_village(
    tree: DivisionTree, targets: list[dict[str, Any]]
) -> None:
    numbers: list[str] = []
    for target in (t for t in targets if t["channel"] == "sms"):
        group = target["address"].split(",")
        assert len(group) == len(tree.children(target["division"]))
        numbers += group
    assert len(numbers) == len(set(numbers))
    assert all(n.startswith("+86100") and len(n) == 14 and n[1:].isdigit() for n in numbers)


def test_banners_are_bilingual(tree: DivisionTree, targets: list[dict[str, Any]]) -> None:
    for target in targets:
        county = tree.ancestors(target["division"])[1:2] or [tree.require(target["division"])]
        is_banner = county[0].name.endswith("旗")
        assert ("mn" in target["languages"]) is is_banner, target["id"]


def test_planning_by_code_and_by_shape_agree(
    tree: DivisionTree, targets: list[dict[str, Any]]
) -> None:
    boxes = [t for t in targets if t["channel"] == "loudspeaker"]
    by_code = [t["id"] for t in boxes if covers("150921001", t["division"])]
    assert len(by_code) == len(tree.children("150921001"))
    index = PointIndex([(t["id"], t["lat"], t["lon"]) for t in boxes])
    seat = tree.require("150929")
    near_seat = index.in_circle(seat.lat, seat.lon, 30.0)
    assert near_seat and all(t.startswith("spk-150929") for t in near_seat)
    whole_city = [(39.5, 110.5), (39.5, 115.0), (44.0, 115.0), (44.0, 110.5), (39.5, 110.5)]
    assert len(index.in_polygon(whole_city)) == len(boxes)


def test_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(DEMO / "generate.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    for name in ("divisions.json", "targets.json"):
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), name


def test_a_different_seed_gives_different_generated_data(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(DEMO / "generate.py"), "--out", str(tmp_path), "--seed", "7"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    other = DivisionTree.load(tmp_path / "divisions.json")
    committed = DivisionTree.load(DEMO / "divisions.json")
    assert [d.name for d in other.children("150900")] == list(REAL_COUNTIES.values())
    assert [d.name for d in other if d.generated] != [d.name for d in committed if d.generated]
