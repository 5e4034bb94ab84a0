"""Offset-range planning of the Kafka sensors: pure, no broker."""

from __future__ import annotations

from metrify_assets.ingestion.kafka.ranges import OffsetRange, dump_cursor, load_cursor, plan_ranges

TOPIC = "metrify.meter-readings.v1"


def test_ranges_run_from_the_cursor_to_the_end_capped_and_interleaved_across_partitions() -> None:
    planned, cursor = plan_ranges(TOPIC, {0: 0, 1: 0}, {0: 25, 1: 4}, {0: 5}, max_records=10, limit=3)
    assert [(r.partition, r.start, r.end) for r in planned] == [(0, 5, 15), (1, 0, 4), (0, 15, 25)]
    assert cursor == {0: 25, 1: 4}


def test_limit_leaves_the_cursor_at_what_was_planned() -> None:
    planned, cursor = plan_ranges(TOPIC, {0: 0}, {0: 100}, {}, max_records=10, limit=2)
    assert [r.end for r in planned] == [10, 20]
    assert cursor == {0: 20}


def test_a_cursor_below_the_retained_beginning_moves_up_and_nothing_new_plans_nothing() -> None:
    planned, cursor = plan_ranges(TOPIC, {0: 40}, {0: 50}, {0: 10})
    assert planned == [OffsetRange(TOPIC, 0, 40, 50)]
    assert plan_ranges(TOPIC, {0: 40}, {0: 50}, cursor) == ([], {0: 50})


def test_batch_ids_round_trip_with_dashes_in_the_topic_and_cursor_json() -> None:
    rng = OffsetRange("t1.metrify.grid-status.v1", 2, 100, 150)
    assert rng.batch_id == "t1.metrify.grid-status.v1-2-100-150"
    assert OffsetRange.parse(rng.batch_id) == rng
    assert load_cursor(dump_cursor({2: 150, 0: 7})) == {0: 7, 2: 150}
    assert load_cursor(None) == {}
