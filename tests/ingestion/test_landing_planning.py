"""The landing sensor's planning: new files once, failed ones again, nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from metrify_assets.ingestion.landing import (
    LandedFile,
    land_batches,
    land_lines,
    landed_messages,
    list_landed,
)
from metrify_assets.ingestion.sensors import (
    FailedBatch,
    due_retries,
    plan_landing_runs,
    retry_delay,
    waiting_text,
)


def files(tmp_path: Path, n: int) -> list[LandedFile]:
    for i in range(n):
        land_lines(tmp_path, "meter_readings", [f'{{"n": {i}}}'], seq=1000 + i)
    return list_landed(tmp_path, "meter_readings")


def test_new_files_are_requested_once_and_the_cursor_moves(tmp_path: Path) -> None:
    landed = files(tmp_path, 3)
    planned, cursor = plan_landing_runs(landed, cursor=0, done=set(), retry_counts={})
    assert [key for _, key in planned] == [f.batch_id for f in landed]
    assert cursor == 1002
    again, cursor2 = plan_landing_runs(landed, cursor=cursor, done=set(), retry_counts={})
    assert again == [] and cursor2 == cursor


def test_failed_batches_below_the_cursor_are_requested_again_with_a_fresh_run_key(tmp_path: Path) -> None:
    landed = files(tmp_path, 3)
    done = {landed[0].batch_id}
    planned, _ = plan_landing_runs(landed, cursor=1002, done=done, retry_counts={landed[1].batch_id: 2})
    assert [(f.batch_id, key) for f, key in planned] == [
        (landed[1].batch_id, f"{landed[1].batch_id}-retry-2")
    ]


def test_a_tick_is_bounded(tmp_path: Path) -> None:
    landed = files(tmp_path, 5)
    planned, cursor = plan_landing_runs(landed, cursor=0, done=set(), retry_counts={}, limit=2)
    assert len(planned) == 2
    assert cursor == 1001  # the rest come next tick


def test_landing_is_content_addressed(tmp_path: Path) -> None:
    a = land_lines(tmp_path, "grid_status", ["x", "y"], seq=1)
    b = land_lines(tmp_path, "grid_status", ["x", "y"], seq=2)
    assert a.batch_id == b.batch_id
    assert LandedFile.from_path(a.path) == a


def test_a_backfill_is_declared_in_the_file_name_and_read_back(tmp_path: Path) -> None:
    history = land_lines(tmp_path, "grid_status", ["x"], seq=3, backfill=True)
    live = land_lines(tmp_path, "grid_status", ["y"], seq=4)
    assert history.path.name.endswith(".backfill.jsonl") and history.backfill
    assert LandedFile.from_path(history.path) == history
    assert [f.backfill for f in list_landed(tmp_path, "grid_status")] == [True, False]
    assert LandedFile.from_path(live.path) == live
    with pytest.raises(ValueError, match="not a landing file name"):
        LandedFile.from_path(tmp_path / "grid_status" / "00000000000000005-abc.other.jsonl")


def test_a_large_import_lands_as_batches_no_longer_than_a_kafka_range_in_order(tmp_path: Path) -> None:
    lines = [f'{{"n": {i}}}' for i in range(5)]
    landed = land_batches(tmp_path, "grid_status", lines, seq=100, backfill=True, per_file=2)
    assert [(f.seq, f.backfill) for f in landed] == [(100, True), (101, True), (102, True)]
    assert [landed_messages(f.path.read_bytes()) for f in landed] == [
        [b'{"n": 0}', b'{"n": 1}'],
        [b'{"n": 2}', b'{"n": 3}'],
        [b'{"n": 4}'],
    ]
    assert list_landed(tmp_path, "grid_status") == landed  # the sensor's order: the lines' order
    assert land_batches(tmp_path, "grid_status", []) == []


def test_a_batch_that_keeps_failing_is_requested_again_ever_less_often() -> None:
    waits = [retry_delay(runs) for runs in range(1, 10)]
    assert waits[:4] == [timedelta(0), timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert waits[-2:] == [timedelta(hours=1), timedelta(hours=1)]  # the longest wait
    assert waits == sorted(waits)


def test_failed_batches_wait_out_their_delay() -> None:
    ended = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)
    failed = {"once": FailedBatch(1, ended), "thrice": FailedBatch(3, ended), "twice": FailedBatch(2, ended)}
    due, waiting = due_retries(failed, ended + timedelta(seconds=59))
    assert due == {"once": 1}
    assert set(waiting) == {"twice", "thrice"}
    assert "2 failed batch(es)" in waiting_text(waiting)
    assert "the next twice (2 failed runs) at 2026-12-05 14:01:00 UTC" in waiting_text(waiting)
    due, waiting = due_retries(failed, ended + timedelta(minutes=2))
    assert (due, waiting) == ({"once": 1, "thrice": 3, "twice": 2}, {})
    assert waiting_text(waiting) == ""
