"""Segment tracking: a delivery is confirmed only when every part's report says delivered."""

from __future__ import annotations

from datetime import UTC, datetime

from broadcaster.channel import Confirmation, ConfirmationOutcome
from channels.sms import SegmentTracker
from channels.sms.tracking import pool_reference
from drivers.gsm import DeliveryReport, ReportStatus
from drivers.gsm.pdu import classify_status

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def report(
    reference: str, sequence: int, total: int, status: int, modem: str = "m0"
) -> DeliveryReport:
    return DeliveryReport(
        reference=reference,
        number="+8613800471001",
        sequence=sequence,
        total=total,
        modem=modem,
        message_reference=sequence,
        state=classify_status(status),
        status=status,
        discharge_time=NOW,
    )


def tracker() -> tuple[SegmentTracker, list[Confirmation]]:
    emitted: list[Confirmation] = []
    return SegmentTracker(emitted.append), emitted


def test_multipart_reports_are_matched_per_part() -> None:
    segments, emitted = tracker()
    reference = segments.expect(7, 1)
    segments.accepted(7, 1)
    segments.on_report(report(reference, 3, 3, 0x00))
    segments.on_report(report(reference, 1, 3, 0x00))
    segments.on_report(report(reference, 1, 3, 0x00))  # a duplicate does not count twice
    assert [c.outcome for c in emitted] == [ConfirmationOutcome.PROGRESS] * 3
    segments.on_report(report(reference, 2, 3, 0x21))
    assert emitted[-1].outcome is ConfirmationOutcome.PROGRESS
    assert "segment 2/3 via m0: TP-ST 0x21 (recipient busy)" in emitted[-1].detail
    segments.on_report(report(reference, 2, 3, 0x00))
    assert emitted[-1] == Confirmation(
        7, ConfirmationOutcome.CONFIRMED, "all 3 segment(s) delivered (status reports)"
    )
    assert segments.open_attempts == 0
    segments.on_report(report(reference, 2, 3, 0x46))  # late: the delivery is settled
    assert len(emitted) == 5


def test_a_permanent_status_fails_the_delivery() -> None:
    segments, emitted = tracker()
    reference = segments.expect(8, 1)
    segments.accepted(8, 1)
    segments.on_report(report(reference, 1, 2, 0x00))
    segments.on_report(report(reference, 2, 2, 0x46))
    assert emitted[-1].outcome is ConfirmationOutcome.FAILED
    assert emitted[-1].detail == "segment 2/2 via m0 failed: TP-ST 0x46 (validity period expired)"
    assert report(reference, 2, 2, 0x46).state is ReportStatus.FAILED


def test_an_older_attempt_failing_does_not_fail_a_newer_one() -> None:
    segments, emitted = tracker()
    old = segments.expect(9, 1)
    segments.accepted(9, 1)
    new = segments.expect(9, 2)
    segments.accepted(9, 2)
    segments.on_report(report(old, 1, 1, 0x41))
    assert emitted == []
    segments.on_report(report(new, 1, 1, 0x00))
    assert [c.outcome for c in emitted] == [ConfirmationOutcome.CONFIRMED]


def test_an_older_attempt_delivered_in_full_confirms() -> None:
    segments, emitted = tracker()
    old = segments.expect(10, 1)
    segments.accepted(10, 1)
    segments.expect(10, 2)
    segments.accepted(10, 2)
    segments.on_report(report(old, 1, 1, 0x00))
    assert [c.outcome for c in emitted] == [ConfirmationOutcome.CONFIRMED]
    assert segments.open_attempts == 0


def test_unknown_references_and_forgotten_attempts_are_ignored() -> None:
    segments, emitted = tracker()
    reference = segments.expect(11, 1)
    segments.accepted(11, 1)
    segments.forget(11, 1)
    segments.on_report(report(reference, 1, 1, 0x00))
    segments.on_report(report("alert-1/x", 1, 1, 0x00))
    assert emitted == []


def test_the_table_of_open_attempts_is_bounded() -> None:
    emitted: list[Confirmation] = []
    segments = SegmentTracker(emitted.append, max_open=3)
    references = [segments.expect(n, 1) for n in range(5)]
    for n in range(5):
        segments.accepted(n, 1)
    assert segments.open_attempts == 3
    segments.on_report(report(references[0], 1, 1, 0x00))
    segments.on_report(report(references[4], 1, 1, 0x00))
    assert [c.delivery_id for c in emitted] == [4]


def test_an_outcome_reported_before_the_send_returned_waits_for_it() -> None:
    segments, emitted = tracker()
    reference = segments.expect(12, 1)
    segments.on_report(report(reference, 1, 2, 0x21))
    segments.on_report(report(reference, 1, 2, 0x00))
    segments.on_report(report(reference, 2, 2, 0x00))
    assert emitted == []
    segments.accepted(12, 1)
    assert [c.outcome for c in emitted] == [ConfirmationOutcome.CONFIRMED]
    assert segments.open_attempts == 0
    segments.accepted(12, 1)
    assert len(emitted) == 1


def test_progress_before_the_send_returned_is_shown_after_it() -> None:
    segments, emitted = tracker()
    reference = segments.expect(13, 1)
    segments.on_report(report(reference, 1, 1, 0x20))
    segments.on_report(report(reference, 1, 1, 0x21))
    assert emitted == []
    segments.accepted(13, 1)
    assert [c.outcome for c in emitted] == [ConfirmationOutcome.PROGRESS]
    assert "TP-ST 0x21 (recipient busy)" in emitted[0].detail
    segments.on_report(report(reference, 1, 1, 0x00))
    assert emitted[-1].outcome is ConfirmationOutcome.CONFIRMED


def test_a_copy_sent_again_through_another_modem_is_judged_by_its_own_reports() -> None:
    segments, emitted = tracker()
    reference = segments.expect(14, 1)
    segments.sent(14, 1, "m0")
    segments.on_report(report(reference, 1, 2, 0x00, "m0"))
    segments.sent(14, 1, "m1")  # m0 vanished at segment 2: the whole message again via m1
    segments.sent(14, 1, "m1")
    segments.on_report(report(reference, 1, 2, 0x00, "m0"))  # late, of the abandoned copy
    segments.on_report(report(reference, 2, 2, 0x00, "m1"))
    segments.accepted(14, 1)
    assert [c.outcome for c in emitted] == [ConfirmationOutcome.PROGRESS]
    assert emitted[0].detail == "segment 2/2 via m1 delivered (1 of 2)"
    segments.on_report(report(reference, 1, 2, 0x00, "m1"))
    assert emitted[-1].outcome is ConfirmationOutcome.CONFIRMED


def test_a_failure_of_an_abandoned_copy_is_dropped_with_it() -> None:
    segments, emitted = tracker()
    reference = segments.expect(15, 1)
    segments.sent(15, 1, "m0")
    segments.on_report(report(reference, 1, 1, 0x41, "m0"))  # held until the send returns
    segments.sent(15, 1, "m1")
    segments.accepted(15, 1)
    assert emitted == []
    segments.on_report(report(reference, 1, 1, 0x00, "m1"))
    assert [c.outcome for c in emitted] == [ConfirmationOutcome.CONFIRMED]


def test_a_restored_attempt_counts_the_reports_of_its_modem_only() -> None:
    segments, emitted = tracker()
    segments.restore(16, 1, {1: ReportStatus.DELIVERED}, "m0")
    reference = pool_reference(16, 1)
    segments.on_report(report(reference, 2, 2, 0x00, "m1"))
    assert emitted == []
    segments.on_report(report(reference, 2, 2, 0x00, "m0"))
    assert [c.outcome for c in emitted] == [ConfirmationOutcome.CONFIRMED]
