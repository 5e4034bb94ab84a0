"""Delivery faults on a real PostgreSQL: duplicates, out-of-order corrections, late days, DST edges.

Each scenario compares the faulted delivery with a clean run of the same input (checksums of the
operational table), checks the ledger, and records its measured recovery in the fault table.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest

from metrify_assets.contracts import METER_READINGS, iso_with_offset
from metrify_assets.ingestion.batch import BatchResult, BatchSpec, process_batch
from metrify_assets.late_days import DayRow, plan_late_days
from metrify_assets.meters.days import LOCAL_TS, day_params, readings_of_days_sql
from metrify_assets.meters.registry import meter_registry
from metrify_assets.resources import LandingResource, PostgresResource
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.migrate import truncate_ops
from tests.faults.conftest import assert_ledger_balances, table_checksum

pytestmark = [pytest.mark.faults, pytest.mark.postgres]
SOURCE = "meter_readings"
NOW = pd.Timestamp("2026-11-01T00:00:00Z")  # after every reading here: nothing is in the future
DAY = date(2026, 6, 10)
FaultLog = Callable[[str, str, float, Sequence[str]], None]


def reading(meter: str, start: str, kwh: float) -> str:
    return json.dumps({"meter_id": meter, "reading_start": start, "interval_minutes": 15, "energy_kwh": kwh})


def quarter_hours(day: date, tz: str = "UTC") -> pd.DatetimeIndex:
    """Every 15-minute start of the local day `day` in `tz` (92 or 100 of them on DST days)."""
    start = pd.Timestamp(day, tz=tz)
    return pd.date_range(start, pd.Timestamp(day + timedelta(days=1), tz=tz), freq="15min", inclusive="left")


def utc_text(instants: pd.DatetimeIndex) -> list[str]:
    return list(instants.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))


def ingest(
    conn: psycopg.Connection,
    lake: Lake,
    batch_id: str,
    messages: Sequence[str],
    version: int,
    arrival: date = DAY,
) -> BatchResult:
    spec = BatchSpec(METER_READINGS, batch_id, "landing", f"{batch_id}.jsonl", arrival)
    result = process_batch(spec, messages, [version] * len(messages), lake, conn, NOW)
    conn.commit()
    return result


def scalar(conn: psycopg.Connection, query: str, params: Sequence[object] | None = None) -> object:
    row = conn.execute(query, params).fetchone()
    conn.commit()
    assert row is not None
    return row[0]


def batch_days(conn: psycopg.Connection, batch_id: str) -> dict[date, int]:
    rows = conn.execute(
        "SELECT day, records FROM ops.ingest_days WHERE batch_id = %s ORDER BY day", (batch_id,)
    ).fetchall()
    conn.commit()
    return {d: int(n) for d, n in rows}


# 4 meters x 12 quarter-hours, plus two records the rules reject (negative energy, off the grid).
DUPLICATE_INPUT = [
    reading(f"M{m}", t, round(0.2 + 0.01 * (m * 12 + i), 3))
    for m in range(4)
    for i, t in enumerate(utc_text(quarter_hours(DAY)[:12]))
] + [reading("M9", "2026-06-10T00:00:00Z", -0.4), reading("M9", "2026-06-10T00:07:00Z", 0.4)]
DUPLICATE_KEYS = 48


@pytest.mark.parametrize(
    ("variant", "deliveries"),
    [
        ("the same batch three times", [("b1", 1), ("b1", 1), ("b1", 1)]),
        ("three batch ids, same versions", [("b1", 1), ("b2", 1), ("b3", 1)]),
        ("three batch ids, increasing versions", [("b1", 1), ("b2", 2), ("b3", 3)]),
    ],
)
def test_a_batch_delivered_three_times_leaves_the_clean_state(
    pg: psycopg.Connection,
    tmp_path: Path,
    fault_log: FaultLog,
    variant: str,
    deliveries: list[tuple[str, int]],
) -> None:
    """At-least-once delivery resends whole batches: the table must look as if each record came once
    (at its newest version), and the ledger must count each batch id once."""
    newest = max(v for _, v in deliveries)
    ingest(pg, Lake(str(tmp_path / "clean")), "clean", DUPLICATE_INPUT, newest)
    clean = table_checksum(pg, SOURCE)
    assert clean[0] == DUPLICATE_KEYS
    truncate_ops(pg)

    lake = Lake(str(tmp_path / "lake"))
    started = time.perf_counter()
    results = [ingest(pg, lake, batch_id, DUPLICATE_INPUT, version) for batch_id, version in deliveries]
    seconds = time.perf_counter() - started

    batch_ids = {b for b, _ in deliveries}
    assert table_checksum(pg, SOURCE) == clean
    assert (
        scalar(pg, "SELECT count(DISTINCT (meter_id, reading_start)) FROM ops.meter_readings")
        == DUPLICATE_KEYS
    )
    assert scalar(pg, "SELECT count(*) FROM ops.ingest_ledger") == len(batch_ids)
    invariants = assert_ledger_balances(pg, len(DUPLICATE_INPUT) * len(batch_ids))
    # Each batch id quarantines its two rejects once, however often it is processed.
    assert scalar(pg, "SELECT count(*) FROM ops.quarantine") == 2 * len(batch_ids)
    # The raw batch is immutable: written the first time its id is seen, never again.
    first_seen = [b not in [x for x, _ in deliveries[:i]] for i, (b, _) in enumerate(deliveries)]
    assert [r.raw_written for r in results] == first_seen
    assert scalar(pg, "SELECT min(record_version) FROM ops.meter_readings") == newest
    fault_log(
        f"duplicate delivery x3: {variant}",
        "idempotent upsert by natural key (newest version kept); ledger and quarantine keyed by batch id",
        seconds,
        [*invariants, "checksum = clean run", "rows = distinct keys", "one ledger row per batch id"],
    )


def test_corrections_applied_in_any_order_leave_the_newest_version(
    pg: psycopg.Connection, tmp_path: Path, fault_log: FaultLog
) -> None:
    """Corrections overtake each other in transit (retries, parallel partitions): the newest version of
    every key must win whatever order its batches arrive in, and an older one never overwrites it."""
    starts = utc_text(quarter_hours(DAY)[:8])
    keys = [(f"M{m}", t) for m in range(3) for t in starts]
    # Version v corrects every key whose index it divides: 1 carries all, 4 only every fourth key.
    batches = {
        v: [reading(m, t, round(0.1 * v + 0.01 * i, 3)) for i, (m, t) in enumerate(keys) if i % v == 0]
        for v in (1, 2, 3, 4)
    }
    expected = {
        (m, pd.Timestamp(t)): round(0.1 * max(v for v in batches if i % v == 0) + 0.01 * i, 3)
        for i, (m, t) in enumerate(keys)
    }

    def deliver(order: Sequence[int], lake: Lake) -> None:
        for v in order:
            ingest(pg, lake, f"corr-v{v}", batches[v], v)

    deliver([1, 2, 3, 4], Lake(str(tmp_path / "clean")))
    clean = table_checksum(pg, SOURCE)
    stored = {
        (m, pd.Timestamp(t)): kwh
        for m, t, kwh in pg.execute("SELECT meter_id, reading_start, energy_kwh FROM ops.meter_readings")
    }
    pg.commit()
    assert stored == expected

    rng = random.Random(20260329)
    orders = [[4, 3, 2, 1]]
    while len(orders) < 4:
        order = rng.sample([1, 2, 3, 4], 4)
        if order not in orders and order != [1, 2, 3, 4]:
            orders.append(order)
    records_in = sum(len(b) for b in batches.values())
    seconds = 0.0
    for i, order in enumerate(orders):
        truncate_ops(pg)
        started = time.perf_counter()
        deliver(order, Lake(str(tmp_path / f"lake{i}")))
        seconds += time.perf_counter() - started
        assert table_checksum(pg, SOURCE) == clean, order
        invariants = assert_ledger_balances(pg, records_in)
    fault_log(
        f"out-of-order delivery of 4 correction batches (reversed and {len(orders) - 1} shuffles)",
        "an incoming row replaces the stored one only when its record_version is not older",
        seconds,
        [*invariants, "checksum = in-order application", "newest version wins per key"],
    )


def test_late_readings_for_a_closed_day_are_accepted_and_replan_that_day(
    pg: psycopg.Connection, tmp_path: Path, fault_log: FaultLog
) -> None:
    """A head-end that was offline for days sends its backlog: the readings are history, not errors,
    and the day they belong to (already closed) must be planned for re-materialisation, alone."""
    lake = Lake(str(tmp_path / "lake"))
    late_day, today = DAY - timedelta(days=5), DAY + timedelta(days=1)
    meter = "M-LATE"  # not in the registry: its readings fall on UTC days
    for day in (DAY, today):
        ingest(pg, lake, f"day-{day}", [reading(meter, t, 0.3) for t in utc_text(quarter_hours(day))], 1, day)
        assert batch_days(pg, f"day-{day}") == {day: 96}

    def day_rows(after: int) -> list[DayRow]:
        rows = [
            DayRow(*r)
            for r in pg.execute(
                "SELECT seq, day, recorded_at FROM ops.ingest_days WHERE seq > %s ORDER BY seq", (after,)
            )
        ]
        pg.commit()
        return rows

    def db_now() -> datetime:
        value = scalar(pg, "SELECT now()")
        assert isinstance(value, datetime)
        return value

    on_time = day_rows(0)
    # settle_seconds=0: the truncated table's sequence starts past 1, a gap that is no transaction's.
    ranges, cursor = plan_late_days(on_time, 0, today, db_now(), settle_seconds=0)
    assert ranges == []  # yesterday and today are the hourly refresh's, not late
    assert cursor == max(r.seq for r in on_time)

    started = time.perf_counter()
    backlog = [reading(meter, t, 0.25) for t in utc_text(quarter_hours(late_day))]
    result = ingest(pg, lake, "backlog", backlog, 2, today)
    late = day_rows(cursor)
    ranges, new_cursor = plan_late_days(late, cursor, today, db_now())
    seconds = time.perf_counter() - started

    assert (result.ledger.accepted, result.ledger.quarantined) == (96, 0)
    assert result.outcome.decision_counts()["reject"] == 0
    assert batch_days(pg, "backlog") == {late_day: 96}
    assert [r.day for r in late] == [late_day]
    assert ranges == [(late_day, late_day, late[0].seq)]
    assert new_cursor == late[0].seq
    assert scalar(pg, "SELECT count(*) FROM ops.meter_readings") == 3 * 96
    invariants = assert_ledger_balances(pg, 3 * 96)
    fault_log(
        "late data: readings for D-5 after D and D+1 were ingested",
        "accepted; ops.ingest_days records D-5; plan_late_days requests D-5 only",
        seconds,
        [*invariants, "no late record rejected", "only the late day re-planned"],
    )


SPRING, AUTUMN = date(2026, 3, 29), date(2026, 10, 25)
LONDON_METER = "MTR-LDN"


def load_registry(tmp_path: Path, pg_resource: PostgresResource) -> None:
    """The registry as the pipeline loads it: the head-end's reference file through `meter_registry`."""
    landing = tmp_path / "landing"
    (landing / "reference").mkdir(parents=True)
    (landing / "reference" / "meters.csv").write_text(
        "meter_id,segment,region,weather_station_id,grid_node_id,tariff,timezone,installed_on\n"
        f"{LONDON_METER},residential,south-east,,,standard,Europe/London,2020-01-01\n"
    )
    result = dg.materialize(
        [meter_registry],
        resources={"landing": LandingResource(directory=str(landing)), "postgres": pg_resource},
    )
    assert result.success


def test_dst_days_keep_every_quarter_hour_once_whatever_the_offset(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path, fault_log: FaultLog
) -> None:
    """A head-end writes the same instant as `Z`, as `+01:00` or in local time: each is one reading.
    Europe/London's short (23 h) and long (25 h) days keep all their quarter-hours, and the repeated
    01:00-02:00 of the autumn day (two instants, one wall-clock hour) are two readings, not duplicates."""
    load_registry(tmp_path, pg_resource)
    assert (
        scalar(pg, "SELECT timezone FROM ops.meters WHERE meter_id = %s", (LONDON_METER,)) == "Europe/London"
    )
    instants = pd.DatetimeIndex(
        quarter_hours(SPRING, "Europe/London").append(quarter_hours(AUTUMN, "Europe/London"))
    )
    assert len(instants) == 92 + 100
    energy = [round(0.1 + 0.01 * (i % 23), 3) for i in range(len(instants))]
    plus_one = instants.tz_convert(timezone(timedelta(hours=1)))
    spellings = {
        "utc": utc_text(instants),
        "plus01": iso_with_offset(plus_one),
        "local": iso_with_offset(instants),  # +00:00 in GMT, +01:00 in BST
    }
    assert spellings["plus01"][0] == "2026-03-29T01:00:00+01:00"
    messages = {name: [reading(LONDON_METER, t, e) for t, e in zip(texts, energy, strict=True)]
                for name, texts in spellings.items()}  # fmt: skip
    expected_days = {SPRING: 92, AUTUMN: 100}

    lake = Lake(str(tmp_path / "lake"))
    ingest(pg, lake, "dst-clean", messages["utc"], 1, AUTUMN)
    clean = table_checksum(pg, SOURCE)
    assert clean[0] == 192
    truncate_ops(pg)
    load_registry(tmp_path / "again", pg_resource)

    started = time.perf_counter()
    results = {name: ingest(pg, lake, f"dst-{name}", msgs, 1, AUTUMN) for name, msgs in messages.items()}
    # One batch carrying every instant in all three spellings: one natural key, so one copy each.
    mixed = [m for trio in zip(*messages.values(), strict=True) for m in trio]
    results["mixed"] = ingest(pg, lake, "dst-mixed", mixed, 1, AUTUMN)
    seconds = time.perf_counter() - started

    for name in spellings:
        outcome = results[name].outcome
        assert results[name].ledger.accepted == 192, (name, outcome.reason_counts())
        assert outcome.reason_counts()["duplicate_conflict"] == 0, name
        assert batch_days(pg, f"dst-{name}") == expected_days, name
    counts = results["mixed"].outcome.reason_counts()
    assert (results["mixed"].ledger.accepted, counts["duplicate_exact"], counts["duplicate_conflict"]) == (
        192,
        2 * 192,
        0,
    )
    assert table_checksum(pg, SOURCE) == clean
    for day, quarters in expected_days.items():
        local_one_am = f"count(*) FILTER (WHERE extract(hour FROM {LOCAL_TS}) = 1)"
        row = pg.execute(readings_of_days_sql(f"count(*), {local_one_am}"), day_params(day, day)).fetchone()
        pg.commit()
        # Spring skips 01:00-02:00 local; autumn has it twice (BST, then GMT).
        assert row == (quarters, 0 if day == SPRING else 8), day
    invariants = assert_ledger_balances(pg, 3 * 192 + len(mixed))
    fault_log(
        "DST edges: Europe/London 23 h and 25 h days as Z, +01:00 and local offsets",
        "instants normalised to UTC (one key per instant); days assigned in the meter's timezone",
        seconds,
        [*invariants, "checksum = clean run", "92 / 100 quarter-hours per day", "no duplicate_conflict"],
    )
