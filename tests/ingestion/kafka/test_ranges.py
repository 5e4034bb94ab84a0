"""Offset-range planning of the Kafka sensors: pure, no broker."""

from __future__ import annotations

from metrify_assets.ingestion.kafka.ranges import (
    OffsetRange,
    balance_ranges,
    dump_cursor,
    load_cursor,
    plan_ranges,
)

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


def spans(ranges: list[OffsetRange]) -> list[tuple[int, int, int]]:
    return [(r.partition, r.start, r.end) for r in ranges]


def test_a_last_round_that_would_leave_workers_idle_is_cut_between_them() -> None:
    a, b, c = (
        OffsetRange(TOPIC, 0, 0, 30_000),
        OffsetRange(TOPIC, 1, 0, 35_000),
        OffsetRange(TOPIC, 2, 5, 32_006),
    )
    # Longest first; the shortest, alone in a second round, is halved for the two workers.
    assert spans(balance_ranges([a, b, c], 2)) == [
        (1, 0, 35_000),
        (2, 5, 32_006),
        (0, 0, 15_000),
        (0, 15_000, 30_000),
    ]
    # Four workers, three ranges: the fourth place goes to the longest.
    assert spans(balance_ranges([a, b, c], 4)) == [
        (1, 0, 17_500),
        (1, 17_500, 35_000),
        (2, 5, 32_006),
        (0, 0, 30_000),
    ]
    # Eight: the five idle places go where the parts stay longest; 8 runs, one round.
    eight = balance_ranges([a, b, c], 8)
    assert len(eight) == 8 and [sum(r.partition == p for r in eight) for p in (1, 2, 0)] == [3, 3, 2]
    assert spans(balance_ranges([a, b, c], 3)) == spans([b, c, a]), "a full round: only reordered"
    assert balance_ranges([a, b, c], 1) == [a, b, c], "one worker: the sensor's plan as it is"


def test_equal_ranges_keep_the_planned_interleaving_of_partitions() -> None:
    planned, _ = plan_ranges(TOPIC, {0: 0, 1: 0}, {0: 150_000, 1: 150_000}, {}, max_records=50_000)
    assert [r.partition for r in balance_ranges(planned, 2)] == [0, 1, 0, 1, 0, 1]
    # Seven equal ranges on eight workers: one more part, not every range cut.
    seven = [OffsetRange(TOPIC, p, 0, 33_000) for p in range(7)]
    assert len(balance_ranges(seven, 8)) == 8


def test_parts_are_never_shorter_than_the_minimum_and_cover_the_range_exactly() -> None:
    small = [OffsetRange(TOPIC, 0, 0, 100), OffsetRange(TOPIC, 1, 0, 100), OffsetRange(TOPIC, 2, 0, 15_000)]
    assert len(balance_ranges(small, 2)) == 3, "no part under MIN_PART_RECORDS"
    assert len(balance_ranges([OffsetRange(TOPIC, 0, 0, 30_000)], 4)) == 3, "three of 10,000, not four"
    assert balance_ranges([], 4) == []
    for workers in range(1, 6):
        for rng in [OffsetRange(TOPIC, 3, 7, 7 + n) for n in (0, 1, 2, 3, 10, 99, 101)]:
            parts = balance_ranges([rng], workers, min_part=1)
            assert len(parts) == max(1, min(workers, rng.end - rng.start))
            assert [(p.start, p.end) for p in parts] == list(
                zip([rng.start] + [p.end for p in parts[:-1]], [p.end for p in parts], strict=True)
            )
            assert parts[0].start == rng.start and parts[-1].end == rng.end
            assert max(p.end - p.start for p in parts) - min(p.end - p.start for p in parts) <= 1
