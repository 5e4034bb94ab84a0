"""A partition whose log restarted below the sensor's cursor: which, and the alert that says so."""

from __future__ import annotations

from metrify_assets.ingestion.kafka.restarted import Restarted, restarted_below


def test_only_partitions_that_end_below_the_cursor_restarted() -> None:
    end = {0: 3, 1: 10, 2: 50}
    # 0 ends below its cursor; 1 ends at it (nothing new); 2 is past it; 3 has no end (gone).
    cursor = {0: 10, 1: 10, 2: 40, 3: 7}
    assert restarted_below("t", end, cursor) == [Restarted("t", 0, 10, 3)]
    assert restarted_below("t", end, {}) == []  # a first tick has no cursor to fall below


def test_the_alert_is_critical_one_per_partition_and_says_what_to_do() -> None:
    alert = Restarted("meters", 1, 500, 20).alert
    assert (alert.kind, alert.severity, alert.dedup_key) == (
        "kafka_restarted",
        "critical",
        "kafka_restarted:meters:1",
    )
    assert (
        "ends at offset 20, below offset 500" in alert.summary and "topic under a new name" in alert.summary
    )
    assert alert.details == {"topic": "meters", "partition": 1, "cursor": 500, "end_offset": 20}
