"""Offsets deleted by retention before they were read: which, and the alert that names them."""

from __future__ import annotations

from metrify_assets.ingestion.kafka.expired import Expired, expired_below


def test_only_offsets_below_the_first_held_one_and_after_the_cursor_are_lost() -> None:
    beginning = {0: 100, 1: 0, 2: 50}
    # Partition 0 was to go on at 40 (60 lost); 1 is held from its start; 2 is ahead of retention;
    # 3 has no beginning offset reported (a partition added since), so nothing is known lost.
    cursor = {0: 40, 1: 10, 2: 70, 3: 5}
    assert expired_below("t", beginning, cursor, {}) == [Expired("t", 0, 40, 100)]
    assert expired_below("t", beginning, {}, {}) == []  # a first tick starts at the beginning: no loss
    # A drain ingested partition 0 up to 90 while this sensor was stopped: only 90..99 are lost.
    assert expired_below("t", beginning, cursor, {0: 90}) == [Expired("t", 0, 90, 100)]
    assert expired_below("t", beginning, cursor, {0: 120}) == []


def test_the_alert_is_critical_and_one_per_lost_range() -> None:
    alert = Expired("meters", 2, 7, 8).alert
    assert (alert.kind, alert.severity, alert.dedup_key) == (
        "kafka_expired",
        "critical",
        "kafka_expired:meters:2@7-8",
    )
    assert alert.summary.startswith("1 message of meters partition 2 (offsets 7..7) was deleted")
    assert alert.details == {
        "topic": "meters",
        "partition": 2,
        "first_offset": 7,
        "end_offset": 8,
        "messages": 1,
    }
