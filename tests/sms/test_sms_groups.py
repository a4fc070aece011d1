"""Subscriber groups: CSV import with line-numbered problems, group entries, per-number plans."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from broadcaster.delivery import Target
from broadcaster.testing.contract import channel_context, contract_message
from channels.sms import SmsChannel, SmsChannelConfig, SmsImportError, group_entries, import_groups
from channels.sms.cli import main

CSV_HEADER = "group,name,division,number,languages\n"


def write_csv(tmp_path: Path, body: str, header: str = CSV_HEADER) -> Path:
    path = tmp_path / "groups.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def test_import_keeps_good_rows_and_names_each_bad_line(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "officials,县级干部,150921000000,+86 138-0047-1001,zh-CN;mn\n"
        "officials,县级干部,150921000000,12ab,\n"
        "officials,县级干部,150921000000,+8613800471001,\n"
        "officials,县级干部,150922000000,+8613800471002,\n"
        ",无组,150921000000,+8613800471003,\n"
        "village,村级信息员,150921001,+8613800471004,\n"
        "nobody,空组,150921000000,not-a-number,\n"
        "badplace,错区划,15092X,+8613800471005,\n",
    )
    imported = import_groups(path)

    assert [t.id for t in imported.targets] == ["officials", "village"]
    officials, village = imported.targets
    assert officials.address == "+8613800471001" and officials.languages == ("zh-CN", "mn")
    assert officials.division == "150921000000" and village.division == "150921001000"
    assert imported.members == 2
    problems = "\n".join(imported.problems)
    assert "line 3: '12ab' is not a phone number" in problems
    assert "line 4: +8613800471001 is already in group officials" in problems
    assert "line 5: group officials has division '150921000000' on line 2" in problems
    assert "line 6: no group" in problems
    assert "line 8: 'not-a-number' is not a phone number" in problems
    assert "line 9:" in problems and "15092X" in problems
    assert "group nobody (line 8): no valid number, not imported" in problems


@pytest.mark.parametrize(
    ("header", "body", "message"),
    [
        ("group,name,number\n", "a,b,+8613800471001\n", "missing columns ['division']"),
        (CSV_HEADER, "a,b,150921000000,0,\n", "no group with a valid number"),
        (CSV_HEADER, "", "no group with a valid number"),
    ],
)
def test_an_unusable_csv_is_one_clear_error(
    tmp_path: Path, header: str, body: str, message: str
) -> None:
    with pytest.raises(SmsImportError, match=message.replace("[", r"\[").replace("]", r"\]")):
        import_groups(write_csv(tmp_path, body, header))


def test_unreadable_files_are_import_errors(tmp_path: Path) -> None:
    with pytest.raises(SmsImportError, match="cannot read"):
        import_groups(tmp_path / "missing.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"group,name\xff\xfe,division,number\n")
    with pytest.raises(SmsImportError, match="not a UTF-8 CSV"):
        import_groups(binary)


def test_group_entries_keep_their_place_in_the_address() -> None:
    target = Target(id="g", channel="sms", name="g", address="+8613800471001, ,12ab,+8613800471002")
    entries = group_entries(target)
    assert [(e.part, e.number) for e in entries] == [
        (1, "+8613800471001"),
        (3, None),
        (4, "+8613800471002"),
    ]
    assert entries[1].error is not None and "'12ab'" in entries[1].error


async def test_plan_is_one_delivery_per_number_once_per_alert(tmp_path: Path) -> None:
    config = SmsChannelConfig.model_validate({"type": "sms", "simulate": True})
    channel = SmsChannel("sms", config, channel_context(tmp_path))
    first = Target(id="a", channel="sms", name="a", address="+8613800471001,+8613800471002,x")
    second = Target(id="b", channel="sms", name="b", address="+8613800471002,+8613800471003")
    empty = Target(id="c", channel="sms", name="c", address="")
    planned = await channel.plan(contract_message(), [first, second, empty])
    assert [(p.target.id, p.part) for p in planned] == [
        ("a", 1),
        ("a", 2),
        ("a", 3),
        ("b", 2),
        ("c", 0),
    ]
    assert all(p.target in (first, second, empty) for p in planned)


def test_the_import_command_prints_registry_json_and_reports_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(
        tmp_path, "officials,县级干部,150921000000,+8613800471001,\nx,y,150921000000,1,\n"
    )
    assert main(["import", str(path), "--channel", "county-sms"]) == 2
    captured = capsys.readouterr()
    entries = json.loads(captured.out)
    assert entries == [
        {
            "id": "officials",
            "channel": "county-sms",
            "name": "县级干部",
            "address": "+8613800471001",
            "division": "150921000000",
            "languages": ["zh-CN"],
        }
    ]
    assert "line 3: '1' is not a phone number" in captured.err
    assert main(["import", str(tmp_path / "none.csv")]) == 1
    assert "error: cannot read" in capsys.readouterr().err


def test_the_import_command_runs_as_a_module(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "officials,县级干部,150921000000,+8613800471001,\n")
    output = tmp_path / "targets.json"
    done = subprocess.run(
        [sys.executable, "-m", "channels.sms", "import", str(path), "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(output.read_text(encoding="utf-8"))[0]["id"] == "officials"
    assert "1 groups, 1 numbers; 0 problems" in done.stderr
