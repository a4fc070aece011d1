"""CAP → EBM and EBM → CAP field rules that the end-to-end tests do not reach: area codes of
townships and provinces, drills and tests from upstream, an EBM whose window is already shut."""

from __future__ import annotations

from datetime import timedelta

import pytest

from broadcaster.cap import Severity, Status, validate_alert
from broadcaster.delivery import Target
from channels.ebplatform.mapping import alert_of_ebm, area_codes, language_code
from drivers.ebd import MsgType
from drivers.ebd import Severity as EbmSeverity
from drivers.ebd.testing import sample_ebm
from tests.core.support import make_alert
from tests.ebplatform.conftest import UPPER_EBRID, ZHUOZI

COUNTY = Target(id="t", channel="eb", name="卓资县平台", address="zhuozi", division=ZHUOZI)


@pytest.mark.parametrize(
    ("geocodes", "expected"),
    [
        ((ZHUOZI,), (ZHUOZI,)),
        (("150921101", "150921102203"), ("150921101000", "150921102203")),
        (("150000",), (ZHUOZI,)),  # the province covers the whole county
        (("150922",), (ZHUOZI,)),  # nothing inside: the county itself
    ],
)
def test_area_codes_are_those_inside_the_platforms_division(
    geocodes: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert area_codes(make_alert(geocodes=geocodes), COUNTY) == expected


def test_language_codes() -> None:
    assert [language_code(t) for t in ("zh-CN", "mn-Mong", "en", "ug", "xx")] == [
        "zho", "mon", "eng", "uig", "zho"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("msg_type", "severity", "status"),
    [
        (MsgType.ACTUAL, EbmSeverity.RED, Status.ACTUAL),
        (MsgType.TERMINAL_DRILL, EbmSeverity.ORANGE, Status.EXERCISE),
        (MsgType.ACTUAL, EbmSeverity.TEST, Status.TEST),
    ],
)
def test_an_upstream_ebm_becomes_a_valid_cap_alert(
    msg_type: MsgType, severity: EbmSeverity, status: Status
) -> None:
    ebm = sample_ebm(UPPER_EBRID, msg_type=msg_type, severity=severity, area_codes=(ZHUOZI,))
    alert = alert_of_ebm(ebm, UPPER_EBRID, None)
    assert validate_alert(alert) == [] or all(
        p.severity == "warning" for p in validate_alert(alert)
    )
    assert alert.status is status
    assert (alert.identifier, alert.sender) == (f"EBM-{ebm.ebmid}", f"ebd-{UPPER_EBRID}")
    (info,) = alert.infos
    assert info.headline == ebm.title and info.description == ebm.description
    assert [(g.value_name, g.value) for g in info.areas[0].geocodes] == [("GB/T 2260", ZHUOZI)]
    expected = {EbmSeverity.RED: Severity.EXTREME, EbmSeverity.ORANGE: Severity.SEVERE}
    assert info.severity is expected.get(severity, Severity.UNKNOWN)


def test_an_ebm_whose_end_is_not_after_its_start_still_gives_a_valid_alert() -> None:
    ebm = sample_ebm(UPPER_EBRID, area_codes=(ZHUOZI,))
    shut = sample_ebm(
        UPPER_EBRID, area_codes=(ZHUOZI,), end_time=ebm.start_time - timedelta(hours=1)
    )
    (info,) = alert_of_ebm(shut, UPPER_EBRID, None).infos
    assert info.expires is not None and info.effective is not None
    assert info.expires > info.effective
