"""The contract suite fails each broken channel of ``broken.py`` naming the rule it breaks, and
passes the sound one, in pytest-asyncio's default strict mode and in auto mode.

The suite runs in a separate pytest process, as in an integrator's project: the channels are
registered through a real entry-point file (a ``.dist-info`` directory on its path), and the
outcome of every test is read from its JUnit XML report.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from broadcaster.channel import Channel
from tests.contract import broken

ROOT = Path(__file__).resolve().parents[2]
SUITE = Path(__file__).with_name("broken_suite.py")
BROKEN_RULES = {
    "TestConfirmsWithoutEffect": "effect-observed",
    "TestPlansTwice": "plan-each-target-once",
    "TestPlansStrangers": "plan-within-candidates",
    "TestRaisesFromProbe": "never-raises",
    "TestRaisesFromPreview": "never-raises",
    "TestSendsOtherThanPreviewed": "content-is-previewed",
    "TestRaisesFromHealth": "never-raises",
    "TestRaisesFromCancel": "cancel-raises-only-channel-errors",
    "TestPermanentAsRetryable": "permanent-is-permanent",
    "TestRetryableAsPermanent": "transient-is-retryable",
    "TestSwallowsCancellation": "cancel-safe",
    "TestAcceptsWithoutConfirming": "accepted-is-confirmed",
    "TestLeaksTask": "no-leaks",
    "TestLeaksThread": "no-leaks",
    "TestShowsItsSecret": "secrets-masked",
    "TestUnregistered": "entry-point",
    "TestUnresolvable": "entry-point",
}
CONTRACT_TESTS = 13


def _entry_points(site: Path) -> None:
    """Register every channel of ``broken.py`` but ``Unregistered`` through a .dist-info."""
    dist = site / "contract_broken-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: contract-broken\nVersion: 0.1\n")
    lines = ["[broadcaster.channels]"]
    for name, cls in inspect.getmembers(broken, inspect.isclass):
        own = issubclass(cls, Channel) and cls.__module__ == broken.__name__
        if own and name not in ("Unregistered", "Unresolvable"):
            lines.append(f"contract-{name.lower()} = {broken.__name__}:{name}")
    lines.append("contract-unresolvable = tests.contract.no_such_module:Unresolvable")
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")


def _run_suite(tmp_path: Path, mode: str) -> dict[str, dict[str, str | None]]:
    """Run the suite; per test class, each test's failure message (None when it passed)."""
    site = tmp_path / "site"
    _entry_points(site)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    report = tmp_path / "report.xml"
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(SUITE),
            "-c",
            str(tmp_path / "pytest.ini"),
            "--rootdir",
            str(tmp_path),
            f"--confcutdir={SUITE.parent}",  # an integrator's run has none of our conftests
            "-p",
            "no:cacheprovider",
            "-o",
            f"asyncio_mode={mode}",
            "-q",
            f"--junitxml={report}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    outcomes: dict[str, dict[str, str | None]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        text = None if problem is None else (problem.get("message") or "") + (problem.text or "")
        assert case.find("skipped") is None, f"{cls}.{case.get('name')} was skipped"
        outcomes.setdefault(cls, {})[case.get("name", "")] = text
    return outcomes


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_the_suite_fails_each_broken_channel_naming_its_rule(tmp_path: Path, mode: str) -> None:
    outcomes = _run_suite(tmp_path, mode)
    assert set(outcomes) == {"TestSinkChannel", *BROKEN_RULES}
    sound = outcomes["TestSinkChannel"]
    assert len(sound) == CONTRACT_TESTS
    assert {name: text for name, text in sound.items() if text} == {}
    for cls, rule in BROKEN_RULES.items():
        failed = {name: text for name, text in outcomes[cls].items() if text}
        assert failed, f"{cls} passed the contract"
        for name, text in failed.items():
            assert f"contract rule '{rule}' broken" in (text or ""), (cls, name, text)
