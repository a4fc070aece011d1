"""Generate the Ulanqab demo registry: ``divisions.json`` and ``targets.json`` beside this file.

Real: the city of Ulanqab (乌兰察布市) and its 11 county-level divisions with their GB/T 2260
codes, names, approximate seat coordinates and, where known, Mongolian names. Generated: every
township and village under them (names, codes, coordinates) and every target. The output is a
pure function of ``--seed``: running this again gives byte-identical files, and the test suite
checks that the committed files are what it produces.

Usage::

    python config/demo/generate.py [--out DIR] [--seed N]

Only the standard library is used, so the data can be regenerated anywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SEED = 2260

CITY = ("150900000000", "乌兰察布市", "ᠤᠯᠠᠭᠠᠨᠴᠠᠪ ᠬᠣᠲᠠ", 41.000, 113.133)


@dataclass(frozen=True)
class CountySeed:
    """A real county-level division and how to scatter its generated places."""

    code6: str
    name: str
    name_mn: str | None
    seat: tuple[float, float]
    centre: tuple[float, float]
    spread_deg: float
    kind: str  # "district", "county" or "banner": decides township and village naming


COUNTIES = (
    CountySeed(
        "150902", "集宁区", "ᠵᠢᠨᠢᠩ ᠲᠣᠭᠣᠷᠢᠭ", (41.031, 113.099), (41.031, 113.099), 0.05, "district"
    ),
    CountySeed("150921", "卓资县", None, (40.893, 112.571), (40.900, 112.450), 0.22, "county"),
    CountySeed(
        "150922", "化德县", "ᠬᠤᠸᠠᠳᠧ ᠰᠢᠶᠠᠨ", (41.900, 114.017), (41.900, 113.980), 0.20, "county"
    ),
    CountySeed(
        "150923", "商都县", "ᠱᠠᠩᠳᠤ ᠰᠢᠶᠠᠨ", (41.567, 113.583), (41.650, 113.600), 0.26, "county"
    ),
    CountySeed(
        "150924", "兴和县", "ᠰᠢᠩᠾᠧ ᠰᠢᠶᠠᠨ", (40.867, 113.833), (40.950, 113.900), 0.24, "county"
    ),
    CountySeed("150925", "凉城县", None, (40.531, 112.496), (40.500, 112.380), 0.24, "county"),
    CountySeed(
        "150926", "察哈尔右翼前旗", None, (40.785, 113.214), (40.850, 113.250), 0.20, "banner"
    ),
    CountySeed(
        "150927", "察哈尔右翼中旗", None, (41.277, 112.634), (41.350, 112.700), 0.26, "banner"
    ),
    CountySeed(
        "150928", "察哈尔右翼后旗", None, (41.436, 113.191), (41.550, 113.250), 0.25, "banner"
    ),
    CountySeed(
        "150929", "四子王旗", "ᠳᠥᠷᠪᠡᠳ ᠬᠣᠰᠢᠭᠤ", (41.533, 111.707), (42.150, 111.800), 0.60, "banner"
    ),
    CountySeed("150981", "丰镇市", None, (40.433, 113.150), (40.450, 113.250), 0.20, "county"),
)

RURAL_FIRST = tuple("东西南北前后上下大小新高中红白黑黄")
RURAL_CORE = tuple("营滩沟梁湾房堡井泉河坝台窑店庄地壕坡洼渠湖岭")
MONGOL_FIRST = (
    "巴音",
    "乌兰",
    "查干",
    "锡拉",
    "呼和",
    "阿拉坦",
    "宝力格",
    "哈达",
    "额尔敦",
    "塔林",
)
MONGOL_CORE = ("淖尔", "敖包", "塔拉", "布拉格", "高勒", "希里", "乌素", "浩特", "陶勒盖", "哈少")
URBAN_FIRST = ("东城", "西城", "南城", "北城", "新华", "建设", "光明", "胜利", "团结", "民主")
URBAN_MORE = ("幸福", "长青", "文化", "友谊", "和平", "春晖")
URBAN_CORE = ("苑", "园", "里", "坊")


def _names(rng: random.Random, pool: list[str], count: int) -> list[str]:
    """``count`` distinct names drawn from ``pool`` (sorted first, so the draw is stable)."""
    return rng.sample(sorted(set(pool)), count)


def _rural_pool(suffix: str, with_zi: bool) -> list[str]:
    endings = ("", "子") if with_zi else ("",)
    return [f"{a}{b}{z}{suffix}" for a in RURAL_FIRST for b in RURAL_CORE for z in endings]


def _mongol_pool(suffix: str) -> list[str]:
    return [f"{a}{b}{suffix}" for a in MONGOL_FIRST for b in MONGOL_CORE]


def _scatter(
    rng: random.Random, centre: tuple[float, float], radius_deg: float
) -> tuple[float, float]:
    """A point spread uniformly over a disc round ``centre``; the radius is in degrees of
    latitude, and longitude is stretched so the disc is round on the ground."""
    angle = rng.uniform(0.0, 2.0 * math.pi)
    distance = radius_deg * math.sqrt(rng.uniform(0.02, 1.0))
    lat = centre[0] + distance * math.cos(angle)
    lon = centre[1] + distance * math.sin(angle) / math.cos(math.radians(centre[0]))
    return round(lat, 5), round(lon, 5)


def _division(
    code: str,
    name: str,
    level: str,
    parent: str | None,
    at: tuple[float, float],
    name_mn: str | None = None,
    generated: bool = True,
) -> dict[str, object]:
    return {
        "code": code,
        "name": name,
        "name_mn": name_mn,
        "level": level,
        "parent": parent,
        "lat": at[0],
        "lon": at[1],
        "generated": generated,
    }


def _township_names(rng: random.Random, county: CountySeed, count: int) -> list[str]:
    if county.kind == "district":
        return [f"{name}街道" for name in _names(rng, [*URBAN_FIRST, *URBAN_MORE], count)]
    towns = _names(rng, _rural_pool("", False), count)
    kinds = ["镇"] + [rng.choice(("镇", "乡")) for _ in range(count - 1)]
    names = [f"{town}{kind}" for town, kind in zip(towns, kinds, strict=True)]
    if county.kind == "banner":
        sumu = _names(rng, _mongol_pool("苏木"), count)
        names = [names[0]] + [sumu[i] if rng.random() < 0.5 else names[i] for i in range(1, count)]
    return names


def _village_names(rng: random.Random, township_name: str, count: int) -> list[str]:
    if township_name.endswith("街道"):
        pool = [f"{a}{b}社区" for a in (*URBAN_FIRST, *URBAN_MORE) for b in URBAN_CORE]
        return _names(rng, pool, count)
    if township_name.endswith("苏木"):
        return _names(rng, _mongol_pool("嘎查"), count)
    return _names(rng, _rural_pool("村", True), count)


def _phone(county: int, township: int, village: int) -> str:
    """A number no subscriber can hold: +86 10 is Beijing, whose local numbers never start
    with 0, and this one continues 0…; it exists for the modem simulator only."""
    return f"+86100{county:02d}{township:02d}{village:02d}01"


DESCRIPTION = (
    "Ulanqab demo division list. Real: the city and its 11 county-level divisions (GB/T 2260 "
    "codes and names, approximate seats). Generated by config/demo/generate.py: every "
    "township and village (names, codes and places are fictional)."
)


def generate(seed: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The division list and the target list for ``seed``."""
    rng = random.Random(seed)
    city_code, city_name, city_mn, city_lat, city_lon = CITY
    divisions = [
        _division(city_code, city_name, "city", None, (city_lat, city_lon), city_mn, False)
    ]
    targets: list[dict[str, object]] = []
    for county_number, county in enumerate(COUNTIES, start=1):
        county_code = county.code6 + "000000"
        divisions.append(
            _division(
                county_code, county.name, "county", city_code, county.seat, county.name_mn, False
            )
        )
        languages = ["zh-CN", "mn"] if county.kind == "banner" else ["zh-CN"]
        targets.append(
            _target(
                "fm",
                f"fm-{county.code6}",
                f"{county.name}应急广播调频发射台",
                county_code,
                county.seat,
                f"tx-{county.code6}",
                languages,
            )
        )
        township_count = rng.randint(4, 8)
        for t_number, t_name in enumerate(_township_names(rng, county, township_count), start=1):
            t_code = f"{county.code6}{t_number:03d}000"
            t_at = county.seat if t_number == 1 else _scatter(rng, county.centre, county.spread_deg)
            divisions.append(_division(t_code, t_name, "township", county_code, t_at))
            village_radius = max(0.012, county.spread_deg * 0.25)
            phones = []
            village_names = _village_names(rng, t_name, rng.randint(10, 20))
            for v_number, v_name in enumerate(village_names, start=1):
                v_code = f"{t_code[:9]}{v_number:03d}"
                v_at = _scatter(rng, t_at, village_radius)
                divisions.append(_division(v_code, v_name, "village", t_code, v_at))
                box_at = _scatter(rng, v_at, 0.002)
                targets.append(
                    _target(
                        "loudspeaker",
                        f"spk-{v_code}",
                        f"{v_name}应急广播大喇叭",
                        v_code,
                        box_at,
                        f"box-{v_code}",
                        languages,
                    )
                )
                targets.append(
                    _target(
                        "log",
                        f"log-{v_code}",
                        f"{v_name}（演示日志）",
                        v_code,
                        v_at,
                        f"village/{v_code}",
                        languages,
                    )
                )
                phones.append(_phone(county_number, t_number, v_number))
            targets.append(
                _target(
                    "sms",
                    f"sms-{t_code[:9]}",
                    f"{t_name}村级信息员",
                    t_code,
                    t_at,
                    ",".join(phones),
                    languages,
                )
            )
    return divisions, targets


def _target(
    channel: str,
    target_id: str,
    name: str,
    division: str,
    at: tuple[float, float],
    address: str,
    languages: list[str],
) -> dict[str, object]:
    return {
        "id": target_id,
        "channel": channel,
        "name": name,
        "division": division,
        "lat": at[0],
        "lon": at[1],
        "address": address,
        "languages": languages,
    }


def _lines(items: list[dict[str, object]]) -> str:
    """One JSON object per line, so diffs of regenerated data stay readable."""
    return ",\n".join("  " + json.dumps(item, ensure_ascii=False) for item in items)


def render(seed: int) -> tuple[str, str]:
    """The text of ``divisions.json`` and ``targets.json`` for ``seed``."""
    divisions, targets = generate(seed)
    divisions_text = (
        "{\n"
        f' "description": {json.dumps(DESCRIPTION, ensure_ascii=False)},\n'
        ' "divisions": [\n'
        f"{_lines(divisions)}\n"
        " ]\n}\n"
    )
    return divisions_text, f"[\n{_lines(targets)}\n]\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    divisions_text, targets_text = render(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "divisions.json").write_text(divisions_text, encoding="utf-8")
    (args.out / "targets.json").write_text(targets_text, encoding="utf-8")


if __name__ == "__main__":
    main()
