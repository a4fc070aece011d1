"""Division codes and the division tree of ``broadcaster.divisions``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from broadcaster.divisions import (
    Division,
    DivisionCodeError,
    DivisionFileError,
    DivisionTree,
    UnknownDivisionError,
    code_level,
    code_prefix,
    covers,
    normalize_code,
    parent_code,
)
from broadcaster.errors import ConfigError

CITY = "150900000000"
COUNTY = "150921000000"
TOWNSHIP = "150921001000"
VILLAGE = "150921001002"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("150921", "150921000000"),
        ("150921001", "150921001000"),
        ("150921001002", "150921001002"),
        (" 150900\n", "150900000000"),
        ("150000", "150000000000"),
        ("441900003", "441900003000"),  # a township directly under a city (Dongguan)
    ],
)
def test_normalize_pads_to_twelve_digits(given: str, expected: str) -> None:
    assert normalize_code(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("15092", "has 5 digits; expected 6"),
        ("1509210010", "has 10 digits"),
        ("1509210010020", "has 13 digits"),
        ("", "only the digits"),
        ("15O921", "only the digits"),
        ("１５０９２１", "only the digits"),  # full-width digits
        ("150-921", "only the digits"),
        ("990921", "'99', which is no province"),
        ("000000", "'00', which is no province"),
        ("150021", "no city part"),
        ("150000001", "no city part"),
        ("150921000002", "village part '002' but no township part"),
    ],
)
def test_normalize_refuses_bad_codes_saying_why(given: str, message: str) -> None:
    with pytest.raises(DivisionCodeError, match=message) as caught:
        normalize_code(given)
    assert isinstance(caught.value, ValueError)


def test_normalize_refuses_non_strings() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        normalize_code(150921)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "level", "prefix", "parent"),
    [
        ("150000000000", "province", "15", None),
        (CITY, "city", "1509", "150000000000"),
        (COUNTY, "county", "150921", CITY),
        (TOWNSHIP, "township", "150921001", COUNTY),
        (VILLAGE, "village", VILLAGE, TOWNSHIP),
        ("441900003000", "township", "441900003", "441900000000"),
        ("441900003001", "village", "441900003001", "441900003000"),
    ],
)
def test_level_prefix_and_parent(code: str, level: str, prefix: str, parent: str | None) -> None:
    assert code_level(code) == level
    assert code_prefix(code) == prefix
    assert parent_code(code) == parent


@pytest.mark.parametrize(
    ("area", "target", "expected"),
    [
        ("150000", VILLAGE, True),  # province covers everything below
        ("150000", "110101000000", False),
        (CITY, COUNTY, True),
        (CITY, VILLAGE, True),
        (CITY, "150800000000", False),  # a neighbouring city
        (CITY, "150000000000", False),  # not its own province
        ("150921", TOWNSHIP, True),
        ("150921", VILLAGE, True),
        ("150921", "150922001001", False),  # a village of the next county
        ("150921", CITY, False),
        ("150921001", VILLAGE, True),
        ("150921001", "150921002001", False),  # a village of the next township
        ("150921001", "150921011001", False),  # prefix 15092100 alone would wrongly match
        (VILLAGE, VILLAGE, True),
        (VILLAGE, "150921001003", False),
        (VILLAGE, TOWNSHIP, False),
        (CITY, CITY, True),
        ("441900", "441900003001", True),  # a city over townships without counties
    ],
)
def test_covers_at_every_level(area: str, target: str, expected: bool) -> None:
    assert covers(area, target) is expected


def test_prefix_selects_in_sql() -> None:
    import sqlite3

    codes = ["150921001001", "150921001002", "150921002001", "150922001001", "150921000000"]
    with sqlite3.connect(":memory:") as db:
        db.execute("CREATE TABLE target (division TEXT)")
        db.executemany("INSERT INTO target VALUES (?)", [(code,) for code in codes])
        for area in ("150921", "150921001", "150900", "150921001002"):
            rows = db.execute(
                "SELECT division FROM target WHERE division LIKE ? || '%' ORDER BY division",
                (code_prefix(area),),
            ).fetchall()
            assert [row[0] for row in rows] == sorted(c for c in codes if covers(area, c))
    db.close()


def _entry(code: str, name: str, level: str, parent: str | None, **extra: Any) -> dict[str, Any]:
    return {"code": code, "name": name, "level": level, "parent": parent, "lat": 40.9,
            "lon": 112.5, **extra}  # fmt: skip


def _small_list() -> list[dict[str, Any]]:
    return [
        _entry(CITY, "乌兰察布市", "city", None, name_mn="ᠤᠯᠠᠭᠠᠨᠴᠠᠪ ᠬᠣᠲᠠ"),
        _entry(COUNTY, "卓资县", "county", CITY),
        _entry("150922000000", "化德县", "county", CITY),
        _entry(TOWNSHIP, "甲镇", "township", COUNTY, generated=True),
        _entry("150921002000", "乙乡", "township", COUNTY, generated=True),
        _entry("150921001001", "东村", "village", TOWNSHIP, generated=True),
        _entry(VILLAGE, "西村", "village", TOWNSHIP, generated=True),
        _entry("150921002001", "南村", "village", "150921002000", generated=True),
    ]


def _tree(entries: list[dict[str, Any]]) -> DivisionTree:
    return DivisionTree.from_data({"divisions": entries}, source="test.json")


def test_tree_navigation() -> None:
    tree = _tree(_small_list())
    assert len(tree) == 8
    assert [d.code for d in tree.roots()] == [CITY]
    assert tree.require("150921").name == "卓资县"
    assert tree.get("150921001") == Division(
        TOWNSHIP, "甲镇", None, "township", COUNTY, 40.9, 112.5, generated=True
    )
    assert tree.get("150923") is None
    assert "150921001002" in tree and "150923" not in tree and "garbage" not in tree
    assert [d.name for d in tree.children(CITY)] == ["卓资县", "化德县"]
    assert [d.name for d in tree.children(TOWNSHIP)] == ["东村", "西村"]
    assert tree.children(VILLAGE) == []
    assert [d.name for d in tree.descendants(COUNTY)] == ["甲镇", "东村", "西村", "乙乡", "南村"]
    assert [d.name for d in tree.ancestors(VILLAGE)] == ["乌兰察布市", "卓资县", "甲镇"]
    assert tree.ancestors(CITY) == []
    assert tree.path_names(VILLAGE) == "乌兰察布市 / 卓资县 / 甲镇 / 西村"
    assert tree.path_names("150921", separator="/") == "乌兰察布市/卓资县"
    assert [d.name for d in tree.covered_by("150921001")] == ["甲镇", "东村", "西村"]
    assert len(tree.covered_by("150000")) == 8  # a province code not in the tree
    assert tree.require(CITY).name_mn == "ᠤᠯᠠᠭᠠᠨᠴᠠᠪ ᠬᠣᠲᠠ"


def test_unknown_and_malformed_codes_in_queries() -> None:
    tree = _tree(_small_list())
    with pytest.raises(UnknownDivisionError, match="150923000000 is not in the tree"):
        tree.children("150923")
    with pytest.raises(LookupError):
        tree.path_names("150921009001")
    with pytest.raises(DivisionCodeError):
        tree.descendants("15092")


def test_short_codes_in_the_file_are_normalised() -> None:
    entries = _small_list()
    entries[1]["code"] = "150921"
    entries[3]["parent"] = "150921"
    assert _tree(entries).require(TOWNSHIP).parent == COUNTY


def _problems(entries: object) -> list[str]:
    with pytest.raises(DivisionFileError) as caught:
        DivisionTree.from_data(entries, source="bad.json")
    assert isinstance(caught.value, ConfigError) and isinstance(caught.value, ValueError)
    assert str(caught.value).startswith("bad.json: invalid division list:")
    for problem in caught.value.problems[:20]:
        assert problem in str(caught.value)
    return caught.value.problems


def _with(index: int, **changes: Any) -> dict[str, object]:
    entries = _small_list()
    entries[index].update(changes)
    return {"divisions": entries}


def test_bad_entries_are_named() -> None:
    assert _problems(_with(6, parent="150921003000")) == [
        "divisions[6] (150921001002 西村): parent 150921003000 is not the division directly "
        "above 150921001002 (expected 150921001000)"
    ]
    entries = _small_list()
    entries.append(_entry("150921003001", "北村", "village", "150921003000"))
    assert _problems({"divisions": entries}) == [
        "divisions[8] (150921003001 北村): parent 150921003000 is not in the list"
    ]
    entries = _small_list()
    entries.append(_entry(VILLAGE, "又一村", "village", TOWNSHIP))
    assert _problems({"divisions": entries}) == [
        "divisions[8] (150921001002 又一村): code 150921001002 is already used by "
        "divisions[6] (150921001002 西村)"
    ]
    (problem,) = _problems(_with(5, code="15092100100"))
    assert problem.startswith("divisions[5] (15092100100 东村): division code '15092100100'")
    assert _problems(_with(3, level="county")) == [
        "divisions[3] (150921001000 甲镇): level 'county' does not match the code, "
        "which names a township"
    ]


def test_every_problem_is_reported_at_once() -> None:
    entries = _small_list()
    entries[2]["lat"] = "41.9"
    entries[4]["level"] = "town"
    entries[5]["colour"] = "red"
    del entries[6]["name"]
    entries[7]["generated"] = "yes"
    entries.append("not an entry")
    assert _problems({"divisions": entries}) == [
        "divisions[2] (150922000000 化德县): lat must be a number, got '41.9'",
        "divisions[4] (150921002000 乙乡): level 'town' is not one of "
        "province, city, county, township, village",
        "divisions[5] (150921001001 东村): unknown key 'colour'",
        "divisions[6] (150921001002): missing key 'name'",
        "divisions[7] (150921002001 南村): generated must be true or false, got 'yes'",
        "divisions[8]: must be an object, got 'not an entry'",
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lat": 95.0}, "lat 95.0 is outside -90..90"),
        ({"lon": float("inf")}, "lon inf is outside -180..180"),
        ({"name": "  "}, "name is empty"),
        ({"name_mn": ""}, "name_mn is empty; use null"),
        ({"name_mn": 7}, "name_mn must be a string or null, got 7"),
        ({"code": 150921001001}, "code must be a string, got 150921001001"),
        ({"parent": "1509x"}, "parent: division code '1509x' must contain only the digits"),
        ({"lat": True}, "lat must be a number, got True"),
    ],
)
def test_field_problems(changes: dict[str, Any], message: str) -> None:
    (problem,) = _problems(_with(5, **changes))
    assert problem.startswith("divisions[5] (")
    assert message in problem


def test_bad_top_level() -> None:
    assert _problems([]) == ["the top level must be an object with 'divisions'"]
    assert _problems({"divisions": {}}) == ["'divisions' must be a list of entries"]
    assert _problems({"divisions": [], "extra": 1}) == ["unknown top-level key 'extra'"]


def test_long_problem_lists_are_cut_short() -> None:
    entries = [_entry(f"1509{n:02d}000000", "县", "county", CITY) for n in range(21, 61)]
    problems = _problems({"divisions": entries})
    assert len(problems) == 40
    assert "… and 20 more" in str(_error_for({"divisions": entries}))


def _error_for(data: object) -> DivisionFileError:
    with pytest.raises(DivisionFileError) as caught:
        DivisionTree.from_data(data, source="bad.json")
    return caught.value


def test_load_reads_files_and_reports_unreadable_ones(tmp_path: Path) -> None:
    good = tmp_path / "divisions.json"
    good.write_text(json.dumps({"divisions": _small_list()}, ensure_ascii=False), "utf-8")
    assert len(DivisionTree.load(good)) == 8
    with pytest.raises(DivisionFileError, match=r"(?s)missing\.json: .*cannot read the file"):
        DivisionTree.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"divisions": [', "utf-8")
    with pytest.raises(DivisionFileError, match=r"(?s)broken\.json: .*not valid UTF-8 JSON"):
        DivisionTree.load(broken)
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"divisions": [], "description": "é"}'.encode("latin-1"))
    with pytest.raises(DivisionFileError, match="not valid UTF-8 JSON"):
        DivisionTree.load(latin)


def test_tree_from_division_objects_is_checked_too() -> None:
    city = Division(CITY, "乌兰察布市", None, "city", None, 41.0, 113.1)
    orphan = Division(VILLAGE, "西村", None, "village", TOWNSHIP, 40.9, 112.5)
    with pytest.raises(DivisionFileError, match=r"divisions\[1\] .*150921001000 is not in"):
        DivisionTree([city, orphan], source="objects")
    assert len(DivisionTree([city])) == 1
