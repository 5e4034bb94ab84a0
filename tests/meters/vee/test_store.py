"""VEE on a real PostgreSQL: series and audit written, idempotent re-runs, late actuals, reviewers'
edits, like-day history, and the asset with its GX check."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import pytest

from metrify_assets.contracts import METER_READINGS
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.meters.vee.assets import vee_meter_readings
from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.review import decide
from metrify_assets.meters.vee.store import DAYS_WRITE, run_days, run_in_groups
from metrify_assets.quality import review
from metrify_assets.resources import PostgresResource, RedisResource
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.migrate import truncate_ops

pytestmark = pytest.mark.postgres
DAY = date(2026, 6, 10)  # unregistered meters: UTC days of 96 quarter-hours
NOW = pd.Timestamp("2026-07-01T00:00:00Z")
CFG = VeeConfig()


def day_messages(
    meter: str, day: date, skip: set[int] = frozenset(), seed: int = 0, tz: str = "UTC", **extra: object
) -> list[str]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(day.isoformat(), tz=tz)
    return [
        json.dumps(
            {
                "meter_id": meter,
                "reading_start": (start + pd.Timedelta(minutes=15 * i)).isoformat(),
                "interval_minutes": 15,
                "energy_kwh": round(0.2 + 0.3 * float(rng.random()), 4),
                **(extra if i == 0 else {}),
            }
        )
        for i in range(96)
        if i not in skip
    ]


def ingest(
    conn: psycopg.Connection, lake: Lake, batch_id: str, messages: list[str], version: int = 1
) -> None:
    spec = BatchSpec(METER_READINGS, batch_id, "landing", f"{batch_id}.jsonl", DAY)
    process_batch(spec, messages, [version] * len(messages), lake, conn, NOW, alert_threshold=0)
    conn.commit()


def audit(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT reading_start, status_before, status_after, method, value_before, value_after, actor "
        "FROM ops.vee_audit ORDER BY audit_id"
    ).fetchall()


def series(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT meter_id, reading_start, energy_kwh, status, method, reasons, edited_by "
        "FROM ops.vee_readings ORDER BY 1, 2"
    ).fetchall()


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def test_gaps_and_a_rejected_reading_are_estimated_and_audited_once(
    pg: psycopg.Connection, lake: Lake
) -> None:
    messages = day_messages("M1", DAY, skip={10, 11})
    negative = json.loads(messages[40])
    messages[40] = json.dumps({**negative, "energy_kwh": -0.3})  # quarantined: negative_energy
    ingest(pg, lake, "b1", messages)
    run = run_days(pg, DAY, DAY, CFG, now=NOW, run_id="r1")
    assert run.result.status_counts() == {
        "actual": 93,
        "estimated": 3,
        "edited": 0,
        "missing": 0,
        "failed": 0,
    }
    assert run.audit_rows == 3
    rows = {r[1].isoformat(): r for r in series(pg) if r[3] != "actual"}
    interval_42 = rows[(pd.Timestamp(DAY.isoformat(), tz="UTC") + pd.Timedelta(minutes=15 * 42)).isoformat()]
    assert interval_42[5] == "negative_consumption"
    day = pg.execute(
        "SELECT expected_intervals, actual_intervals, estimated_intervals, billing_ready FROM ops.vee_days"
    ).fetchone()
    assert day == (96, 93, 3, True)
    assert {(a[1], a[2], a[6]) for a in audit(pg)} == {(None, "estimated", "vee")}

    before, trail = series(pg), audit(pg)
    again = run_days(pg, DAY, DAY, CFG, now=NOW, run_id="r2")
    assert again.audit_rows == 0 and series(pg) == before and audit(pg) == trail

    # The missing readings arrive late: actuals replace their estimates, and the trail says so.
    late = [m for i, m in enumerate(day_messages("M1", DAY)) if i in (10, 11)]
    ingest(pg, lake, "b2", late, version=2)
    late_run = run_days(pg, DAY, DAY, CFG, now=NOW, run_id="r3")
    assert late_run.result.status_counts()["estimated"] == 1
    assert late_run.audit_rows == 2
    assert [(a[1], a[2], a[3]) for a in audit(pg)[3:]] == [("estimated", "actual", "actual")] * 2


def test_a_quarantined_record_whose_text_postgresql_cannot_hold_is_unplaced(
    pg: psycopg.Connection, lake: Lake
) -> None:
    messages = day_messages("M1", DAY)
    nul = json.loads(messages[5])
    messages[5] = json.dumps({**nul, "meter_id": "M\u00001"})  # quarantined: malformed:bad_text
    ingest(pg, lake, "b1", messages)
    run = run_days(pg, DAY, DAY, CFG, now=NOW, run_id="r1")  # was: DataError, NUL in a text field
    assert run.unplaced_quarantined == 1
    assert run.result.status_counts()["actual"] == 95


def test_reviewers_decisions_become_edits_with_their_author(pg: psycopg.Connection, lake: Lake) -> None:
    messages = day_messages("M1", DAY)
    for i, volts in ((20, 262.0), (30, 190.0)):  # flagged: voltage_out_of_range
        messages[i] = json.dumps({**json.loads(messages[i]), "voltage_v": volts})
    ingest(pg, lake, "b1", messages)
    run_days(pg, DAY, DAY, CFG, now=NOW)
    first, second = review.list_items(pg)
    approved = decide(pg, "approve", first.batch_id, first.record_index, by="ana", note="tap change")
    rejected = decide(pg, "reject", second.batch_id, second.record_index, by="bob", note="CT fault")
    assert (approved.item.status, approved.vee_status, approved.vee_method) == (
        "approved",
        "edited",
        "review_approved",
    )
    assert (rejected.item.status, rejected.vee_status, rejected.vee_method) == (
        "rejected",
        "edited",
        "linear_interpolation",
    )
    assert approved.vee is not None and approved.vee.audit_rows == 1
    edited = {r[1].isoformat(): r for r in series(pg) if r[3] == "edited"}
    assert sorted((r[4], r[6]) for r in edited.values()) == [
        ("linear_interpolation", "bob"),
        ("review_approved", "ana"),
    ]
    actors = sorted((a[2], a[6]) for a in audit(pg))
    assert actors == [("edited", "ana"), ("edited", "bob")]
    assert pg.execute("SELECT edited_intervals, billing_ready FROM ops.vee_days").fetchone() == (2, True)


def test_a_verdict_is_approve_reject_or_reopen(pg: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="verdict must be one of approve, reject, reopen, not 'keep'"):
        decide(pg, "keep", "b1", 0, by="ana", note="x")


def test_like_day_uses_clean_same_weekdays_only(pg: psycopg.Connection, lake: Lake) -> None:
    history = [DAY - timedelta(days=7 * k) for k in (1, 2, 3)]
    for n, day in enumerate(history):
        skip = set(range(20, 25)) if n == 2 else set()  # three weeks back had gaps: estimated, excluded
        ingest(pg, lake, f"h{n}", day_messages("M1", day, skip=skip, seed=n))
        run_days(pg, day, day, CFG, now=NOW)
    ingest(pg, lake, "b1", day_messages("M1", DAY, skip=set(range(40, 60)), seed=9))
    run_days(pg, DAY, DAY, CFG, now=NOW)
    got = pg.execute(
        "SELECT energy_kwh FROM ops.vee_readings WHERE local_date = %s AND method LIKE 'like_day%%' "
        "ORDER BY reading_start",
        (DAY,),
    ).fetchall()
    assert len(got) == 20
    clean = [json.loads(m)["energy_kwh"] for m in day_messages("M1", history[0], seed=0)]
    clean2 = [json.loads(m)["energy_kwh"] for m in day_messages("M1", history[1], seed=1)]
    expected = [(a + b) / 2 for a, b in zip(clean[40:60], clean2[40:60], strict=True)]
    assert [g[0] for g in got] == pytest.approx(expected)


def _materialise_day(pg_resource: PostgresResource) -> tuple[dg.ExecuteInProcessResult, dict[str, Any]]:
    """`vee_meter_readings` over DAY: the run's result and its materialisation's metadata."""
    result = dg.materialize(
        [vee_meter_readings],
        resources={"postgres": pg_resource, "redis": RedisResource()},
        partition_key=DAY.isoformat(),
    )
    assert result.success
    (mat,) = result.asset_materializations_for_node("vee_meter_readings")
    return result, dict(mat.metadata)


def test_asset_writes_the_partition_and_checks_it(
    pg: psycopg.Connection, pg_resource: PostgresResource, lake: Lake
) -> None:
    ingest(pg, lake, "b1", day_messages("M1", DAY, skip={5}) + day_messages("M2", DAY, seed=3))
    result, meta = _materialise_day(pg_resource)
    assert (meta["meter_days"].value, meta["intervals"].value, meta["intervals_estimated"].value) == (
        2,
        192,
        1,
    )
    assert meta["billing_ready_days"].value == 2 and meta["audit_rows_written"].value == 1
    (check,) = result.get_asset_check_evaluations()
    assert check.passed


def test_a_day_nothing_arrived_for_is_skipped_not_written_as_zero_kwh_days(
    pg: psycopg.Connection, pg_resource: PostgresResource, lake: Lake
) -> None:
    """A run asked for a day no meter has a reading on (what a batch that stored nothing used to
    mark touched): nothing is written, where every registered meter got a missing day (0 kWh in the
    marts). A reading of that day quarantined makes it a day VEE runs: its interval fails, and the
    registered meter that sent nothing has its missing day."""
    pg.execute("INSERT INTO ops.meters (meter_id, segment, region, timezone) VALUES ('M4', 'r', 'n', 'UTC')")
    pg.commit()
    ingest(pg, lake, "b1", day_messages("M1", DAY - timedelta(days=1)))  # the day before: a neighbour

    def materialise() -> dict[str, object]:
        meta = _materialise_day(pg_resource)[1]
        return {k: meta[k].value for k in ("days_skipped_empty", "meter_days")}

    assert materialise() == {"days_skipped_empty": 1, "meter_days": 0}
    days = "SELECT meter_id, actual_intervals, failed_intervals, missing_intervals FROM ops.vee_days "
    assert pg.execute(days + "WHERE local_date = %s", (DAY,)).fetchall() == []
    assert pg.execute("SELECT count(*) FROM ops.vee_readings WHERE local_date = %s", (DAY,)).fetchone() == (
        0,
    )

    negative = json.loads(day_messages("M1", DAY)[0]) | {"energy_kwh": -0.2}
    ingest(pg, lake, "b2", [json.dumps(negative)])  # quarantined: negative_energy
    assert materialise() == {"days_skipped_empty": 0, "meter_days": 2}
    assert pg.execute(days + "WHERE local_date = %s ORDER BY 1", (DAY,)).fetchall() == [
        ("M1", 0, 1, 95),
        ("M4", 0, 0, 96),
    ]


def test_a_meter_is_missing_only_from_its_first_accepted_reading_not_for_a_stray_record(
    pg: psycopg.Connection, pg_resource: PostgresResource, lake: Lake
) -> None:
    """New-user trial: the readings began on a day, and one clock-shifted record (quarantined,
    timestamp_misaligned) fell on the local day before. That made the day one VEE runs, and every
    registered meter had a missing day on it (0 kWh rows in the marts, not billing-ready); then the
    stray record's interval alone was written as a failed day, which put its meter in the region mart
    that day. A meter is expected from its first accepted reading (a registered one that sent none:
    from its install date): the stray record stays in the quarantine, in no meter-day; a gap after the
    first reading stays missing."""
    began, london = date(2026, 6, 16), "Europe/London"
    before, after = began - timedelta(days=1), began + timedelta(days=1)
    pg.execute(
        "INSERT INTO ops.meters (meter_id, segment, region, timezone, installed_on) VALUES "
        "('SPAN-A', 'commercial', 'london', %(tz)s, '2025-01-01'), "
        "('SPAN-B', 'commercial', 'london', %(tz)s, '2025-01-01'), "
        "('SPAN-D', 'commercial', 'london', %(tz)s, %(began)s)",
        {"tz": london, "began": began},
    )
    pg.commit()
    stray = json.loads(day_messages("SPAN-A", began, tz=london)[0])
    stray["reading_start"] = "2026-06-15T23:46:00+01:00"
    messages = [
        *day_messages("SPAN-A", began, tz=london),
        *day_messages("SPAN-A", after, seed=1, tz=london),
        *day_messages("SPAN-B", began, seed=2, tz=london),  # then silent on `after`: a real gap
        json.dumps(stray),
    ]
    ingest(pg, lake, "span1", messages)
    assert pg.execute("SELECT reasons FROM ops.quarantine WHERE batch_id = 'span1'").fetchall() == [
        ("timestamp_misaligned",)
    ]
    meta = _vee_backfill(pg_resource, before, after).metadata
    assert meta["days_skipped_empty"].value == 0  # the stray record makes `before` a day VEE runs
    days = pg.execute(
        "SELECT meter_id, local_date, expected_intervals, actual_intervals, failed_intervals, "
        "missing_intervals FROM ops.vee_days ORDER BY 1, 2"
    ).fetchall()
    assert days == [
        ("SPAN-A", began, 96, 96, 0, 0),
        ("SPAN-A", after, 96, 96, 0, 0),
        ("SPAN-B", began, 96, 96, 0, 0),
        ("SPAN-B", after, 96, 0, 0, 96),
        ("SPAN-D", began, 96, 0, 0, 96),
        ("SPAN-D", after, 96, 0, 0, 96),
    ]
    assert pg.execute(
        "SELECT count(*) FROM ops.vee_readings WHERE local_date = %s", (before,)
    ).fetchone() == (0,)
    assert pg.execute(
        "SELECT records_in, accepted, quarantined FROM ops.ingest_ledger WHERE batch_id = 'span1'"
    ).fetchone() == (len(messages), len(messages) - 1, 1)


def test_a_meters_first_day_is_expected_from_its_first_readings_interval(
    pg: psycopg.Connection, pg_resource: PostgresResource, lake: Lake
) -> None:
    """A meter commissioned at 13:00 had its first day's 52 intervals before then reported missing
    (estimated from 13:00's reading), the day not billing-ready. Its first day is expected from its
    first accepted reading's interval; a gap after it is estimated as before, a whole silent day later
    is missing. A record quarantined before the first accepted reading on the same local day (here a
    misaligned 12:16) opens the day at its interval: the meter was reporting, so 12:15-12:45 are VEE's
    (estimated) and not left out, and bad data opening a first day is never counted away. A registered
    meter that never sent is expected from its install date's midnight (the registry has a day, not a
    time); an unregistered meter is cut the same way on its UTC day. (NOON-U's readings on the third
    day make it one VEE runs: a day nobody sent anything for is skipped.)"""
    began, london = date(2026, 6, 23), "Europe/London"
    second, third = began + timedelta(days=1), began + timedelta(days=2)
    pg.execute(
        "INSERT INTO ops.meters (meter_id, segment, region, timezone, installed_on) VALUES "
        "('NOON-A', 'commercial', 'london', %(tz)s, %(began)s), "
        "('NOON-N', 'commercial', 'london', %(tz)s, %(began)s)",
        {"tz": london, "began": began},
    )
    pg.commit()
    morning = set(range(52))  # 00:00-12:45: before commissioning
    first_day = day_messages("NOON-A", began, skip=morning | {60}, tz=london)  # 15:00 is a gap
    early = json.loads(first_day[0])
    early["reading_start"] = "2026-06-23T12:16:00+01:00"  # quarantined, lands on 12:15
    messages = [
        *first_day,
        *day_messages("NOON-A", second, seed=1, tz=london),  # then silent on `third`
        *day_messages("NOON-U", began, skip=morning, seed=2),  # unregistered: UTC
        *day_messages("NOON-U", second, seed=3),
        *day_messages("NOON-U", third, seed=4),
        json.dumps(early),
    ]
    ingest(pg, lake, "noon1", messages)
    assert pg.execute("SELECT reasons FROM ops.quarantine WHERE batch_id = 'noon1'").fetchall() == [
        ("timestamp_misaligned",)
    ]
    _vee_backfill(pg_resource, began, third)
    days = pg.execute(
        "SELECT meter_id, local_date, expected_intervals, actual_intervals, estimated_intervals, "
        "failed_intervals, missing_intervals, billing_ready FROM ops.vee_days "
        "WHERE meter_id LIKE 'NOON-%%' ORDER BY 1, 2"
    ).fetchall()
    assert days == [
        ("NOON-A", began, 47, 43, 4, 0, 0, True),  # from 12:15: the quarantined 12:16 and 15:00 estimated
        ("NOON-A", second, 96, 96, 0, 0, 0, True),
        ("NOON-A", third, 96, 0, 0, 0, 96, False),
        ("NOON-N", began, 96, 0, 0, 0, 96, False),
        ("NOON-N", second, 96, 0, 0, 0, 96, False),
        ("NOON-N", third, 96, 0, 0, 0, 96, False),
        ("NOON-U", began, 44, 44, 0, 0, 0, True),
        ("NOON-U", second, 96, 96, 0, 0, 0, True),
        ("NOON-U", third, 96, 96, 0, 0, 0, True),
    ]
    first_interval = pg.execute(
        "SELECT min(reading_start) FROM ops.vee_readings WHERE meter_id = 'NOON-A'"
    ).fetchone()
    assert first_interval == (pd.Timestamp("2026-06-23T12:15:00+01:00").to_pydatetime(),)


def _vee_backfill(
    pg_resource: PostgresResource, first: date, last: date, **config: object
) -> dg.AssetMaterialization:
    result = dg.materialize(
        [vee_meter_readings],
        resources={"postgres": pg_resource, "redis": RedisResource()},
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
        run_config={"ops": {"vee_meter_readings": {"config": config}}},
    )
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
    mats = result.asset_materializations_for_node("vee_meter_readings")
    assert len(mats) == (last - first).days + 1  # one per partition, the run's metadata on each
    return mats[0]


def _stored_vee(conn: psycopg.Connection) -> tuple[list[tuple[object, ...]], ...]:
    """Every VEE table's rows without their ids, run ids and write times, in a fixed order."""
    return (
        conn.execute(
            "SELECT meter_id, reading_start, local_date, energy_kwh, original_kwh, status, method, reasons, "
            "batch_id, edited_by FROM ops.vee_readings ORDER BY 1, 2"
        ).fetchall(),
        conn.execute(f"SELECT {DAYS_WRITE} FROM ops.vee_days ORDER BY 1, 2").fetchall(),
        conn.execute(
            "SELECT meter_id, reading_start, status_before, status_after, method, value_before, value_after, "
            "reason, actor FROM ops.vee_audit ORDER BY 1, 2, 3 NULLS FIRST, 4"
        ).fetchall(),
    )


def _backfill_scene(conn: psycopg.Connection, lake: Lake) -> None:
    """Two days of five meters, each with something VEE must get right for its own meter only: gaps
    beside a quarantined reading (M1), a reviewer's approval (M2), readings that went after a first
    VEE (M3: its series must be removed), a registered meter that sent nothing (M4, missing days), a
    meter in Paris (M5), and a record too malformed to place."""
    conn.execute(
        "INSERT INTO ops.meters (meter_id, segment, region, timezone) VALUES ('M4', 'r', 'n', 'UTC'), "
        "('M5', 'r', 'n', 'Europe/Paris')"
    )
    conn.commit()
    for n, day in enumerate((DAY - timedelta(days=1), DAY)):
        m1 = day_messages("M1", day, skip={10, 11}, seed=n)
        m1[40] = json.dumps({**json.loads(m1[40]), "energy_kwh": -0.3})  # quarantined: negative_energy
        m2 = day_messages("M2", day, seed=10 + n)
        m2[20] = json.dumps({**json.loads(m2[20]), "voltage_v": 262.0})  # flagged for review
        messages = m1 + m2 + day_messages("M3", day, seed=20 + n) + day_messages("M5", day, seed=30 + n)
        ingest(conn, lake, f"b{n}", [*messages, '{"meter_id": "M9", "reading_start": "not a time"}'])
    run_days(conn, DAY - timedelta(days=1), DAY, CFG, now=NOW)
    item = next(i for i in review.list_items(conn) if i.record_key.startswith("M2|"))
    decide(conn, "approve", item.batch_id, item.record_index, by="ana", note="tap change")
    conn.execute("DELETE FROM ops.meter_readings WHERE meter_id = 'M3'")
    conn.commit()


def test_a_backfill_in_groups_of_one_meter_stores_what_one_group_does(
    pg: psycopg.Connection, pg_resource: PostgresResource, lake: Lake
) -> None:
    """Everything VEE does is per meter, so the groups that bound a backfill's memory must not change
    a stored row, an audit row or a figure of the run's metadata."""
    outcomes = []
    for per_group in (1_000_000, 1):  # all five meters at once; then one meter (2 meter-days) a group
        truncate_ops(pg)
        _backfill_scene(pg, lake)
        mat = _vee_backfill(pg_resource, DAY - timedelta(days=1), DAY, meter_days_per_group=per_group)
        outcomes.append((_stored_vee(pg), {k: v.value for k, v in mat.metadata.items()}))
    (stored, meta), (grouped, grouped_meta) = outcomes
    assert grouped == stored
    assert grouped_meta == meta
    readings, days, trail = stored
    assert {r[0] for r in readings} == {"M1", "M2", "M4", "M5"}  # M3's series went, audited:
    assert sum(1 for a in trail if a[0] == "M3" and a[3] == "removed") == 2 * 96
    assert {(d[0], d[1]) for d in days} == {
        (m, DAY - timedelta(days=d)) for m in ("M1", "M2", "M4", "M5") for d in (0, 1)
    }
    assert ("M2", "edited", "review_approved", "ana") in {(r[0], r[5], r[6], r[9]) for r in readings}
    assert meta["meter_days"] == 8 and meta["unplaced_quarantined"] == 2
    # M5's first local day begins at 22:00 UTC the day before, two hours before its first reading:
    # they are not expected of it (they were 8 estimated intervals), its day holds 88.
    assert pd.DataFrame(readings).groupby([0, 5]).size().to_dict() == {
        ("M1", "actual"): 186,
        ("M1", "estimated"): 6,
        ("M2", "actual"): 191,
        ("M2", "edited"): 1,
        ("M4", "missing"): 192,
        ("M5", "actual"): 184,
    }
    assert (meta["intervals_estimated"], meta["intervals_missing"], meta["audit_rows_written"]) == (
        6,
        192,
        192,
    )


def test_every_group_of_a_run_is_veed_as_of_the_runs_one_time(pg: psycopg.Connection, lake: Lake) -> None:
    """Mid-day, what is due and which days are closed decide missing against pending intervals: a
    run in groups must decide them as of one time, as one run over all meters does."""
    midday = pd.Timestamp(DAY.isoformat(), tz="UTC") + pd.Timedelta(hours=12)
    outcomes = []
    for per_group in (1_000_000, 1):
        truncate_ops(pg)
        ingest(
            pg, lake, "b1", day_messages("M1", DAY, skip=set(range(30, 96))) + day_messages("M2", DAY, seed=2)
        )
        runs = list(run_in_groups(pg, DAY, DAY, CFG, per_group, midday))
        assert len(runs) == (1 if per_group > 1 else 2)
        outcomes.append(_stored_vee(pg))
    assert outcomes[1] == outcomes[0]
    # As of midday M1's day is open: the 18 due intervals after its last reading wait (missing, not
    # estimated, as they would be once the day has closed), and so do the 48 not yet due.
    readings, days, _ = outcomes[0]
    assert pd.DataFrame(readings).groupby([0, 5]).size().to_dict() == {
        ("M1", "actual"): 30,
        ("M1", "missing"): 66,
        ("M2", "actual"): 96,
    }
    assert {d[0]: d[-2] for d in days} == {"M1": "day_open,missing_share", "M2": "day_open"}


def test_unplaced_records_count_once_per_batch_across_the_stretches_of_a_run(
    pg: psycopg.Connection, pg_resource: PostgresResource, lake: Lake
) -> None:
    """An archived middle day splits a run into two stretches; each reads the batches that touched its
    days and a day either side, so the middle day's batch is read by both. Its malformed record counts
    once and each other batch's too: 3 (taking the larger stretch's count gave 2)."""
    days = [DAY - timedelta(days=2), DAY - timedelta(days=1), DAY]
    for n, day in enumerate(days):
        ingest(
            pg, lake, f"b{n}", [*day_messages(f"M{n}", day)[:4], '{"meter_id": "M9", "reading_start": "x"}']
        )
    pg.execute(
        "INSERT INTO ops.lifecycle_days (dataset, day, tier, storage_class, object_key, manifest_key, "
        "row_count, bytes, checksum, sha256, verified_at, moved_at, hot_deleted_at) VALUES "
        "('meter_readings', %s, 'warm', 'STANDARD', 'k', 'm', 4, 1, 'c', 's', now(), now(), now())",
        (days[1],),
    )
    pg.commit()
    meta = {k: v.value for k, v in _vee_backfill(pg_resource, days[0], days[2]).metadata.items()}
    assert meta["unplaced_quarantined"] == 3
    assert {r[0] for r in _stored_vee(pg)[1]} == {"M0", "M2"}  # the archived day's meter-day: not VEE'd


def register_day(meter: str, day: date, register_from: float, seed: int = 0) -> tuple[list[dict], np.ndarray]:
    """A day of readings with the import register ending each interval; the records and the energies."""
    rng = np.random.default_rng(seed)
    energy = np.round(0.2 + 0.3 * rng.random(96), 4)
    register = register_from + np.cumsum(energy)
    start = pd.Timestamp(day.isoformat(), tz="UTC")
    records = [
        {
            "meter_id": meter,
            "reading_start": (start + pd.Timedelta(minutes=15 * i)).isoformat(),
            "interval_minutes": 15,
            "energy_kwh": float(energy[i]),
            "register_kwh": round(float(register[i]), 4),
        }
        for i in range(96)
    ]
    return records, energy


def test_a_register_that_restarts_mid_series_gives_plausible_estimates_with_the_reason(
    pg: psycopg.Connection, pg_resource: PostgresResource, lake: Lake
) -> None:
    """The trial's case: a second simulation restarts the registers at another value. M1's register
    jumps +42,711 kWh between two adjacent readings (was: that reading estimated at 42,711 kWh, the
    suite failed after the write and every later run on it); M2's goes back to near zero inside a gap
    (a meter exchange). Both keep unscaled estimates, recorded as `register_reset`, and the run passes."""
    m1, e1 = register_day("M1", DAY, 417_541.0, seed=1)
    for r in m1[48:]:
        r["register_kwh"] += 42_711.0
    m2, e2 = register_day("M2", DAY, 9_000.0, seed=2)
    for r in m2[60:]:
        r["register_kwh"] -= 8_990.0
    m2 = [r for i, r in enumerate(m2) if i not in (58, 59, 60, 61)]
    ingest(pg, lake, "b1", [json.dumps(r) for r in m1 + m2])
    result = dg.materialize(
        [vee_meter_readings],
        resources={"postgres": pg_resource, "redis": RedisResource()},
        partition_key=DAY.isoformat(),
    )
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
    rows = pd.DataFrame(series(pg), columns=["meter", "start", "kwh", "status", "method", "reasons", "by"])
    # No interval above the bound VEE holds an interval to: below each day's spike limit (4 x its
    # 3rd highest interval), so far under the 1000 kWh of the record rules and the suite.
    for meter, energy in (("M1", e1), ("M2", e2)):
        stored = rows[rows["meter"] == meter]["kwh"].astype(float)
        assert stored.max() <= 4.0 * np.sort(energy)[-3]
    rows["slot"] = rows["start"].dt.hour * 4 + rows["start"].dt.minute // 15
    estimated = rows[rows["status"] == "estimated"].set_index(["meter", "slot"])
    assert estimated.index.tolist() == [("M1", 48), ("M2", 58), ("M2", 59), ("M2", 60), ("M2", 61)]
    assert set(estimated["method"]) == {"linear_interpolation"}
    assert estimated.loc[("M1", 48), "reasons"] == "register_mismatch,register_reset"
    assert set(estimated.loc["M2", "reasons"]) == {"gap,register_reset"}
    assert float(estimated.loc[("M1", 48), "kwh"]) == pytest.approx((e1[47] + e1[49]) / 2, abs=1e-4)
    trail = pg.execute(
        "SELECT meter_id, reason, value_after FROM ops.vee_audit ORDER BY 1, reading_start"
    ).fetchall()
    assert [(m, reason) for m, reason, _ in trail] == [
        ("M1", "register_mismatch,register_reset"),
        *[("M2", "gap,register_reset")] * 4,
    ]
    assert pg.execute(
        "SELECT count(*) FILTER (WHERE billing_ready), count(*) FROM ops.vee_days"
    ).fetchone() == (2, 2)


def test_a_series_that_fails_the_suite_is_not_stored(
    pg: psycopg.Connection, pg_resource: PostgresResource, lake: Lake
) -> None:
    """The guard runs on each group's series before it is written: a failing group writes nothing (its
    series, days and billing readiness stay as stored before), the groups that pass are written, and
    the run fails naming what was not written."""
    ingest(pg, lake, "b1", day_messages("M1", DAY, skip={5}) + day_messages("M2", DAY, seed=3)[:2])

    def run() -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [vee_meter_readings],
            resources={"postgres": pg_resource, "redis": RedisResource()},
            partition_key=DAY.isoformat(),
            run_config={"ops": {"vee_meter_readings": {"config": {"meter_days_per_group": 1}}}},
            raise_on_error=False,
        )

    assert run().success
    m2_before = [r for r in series(pg) if r[0] == "M2"]
    days_before = pg.execute(f"SELECT {DAYS_WRITE} FROM ops.vee_days WHERE meter_id = 'M2'").fetchall()
    trail_before = audit(pg)
    # A reading no record rule would let in (5,000 kWh in a quarter-hour), stored by a path that
    # bypassed them; M2 sent two readings, too few for a spike limit, so VEE keeps it as read.
    pg.execute(
        "UPDATE ops.meter_readings SET energy_kwh = 5000 WHERE meter_id = 'M2' AND reading_start = %s",
        (pd.Timestamp(DAY.isoformat(), tz="UTC").to_pydatetime(),),
    )
    pg.commit()
    ingest(pg, lake, "b2", [day_messages("M1", DAY)[5]], version=2)  # M1's missing reading arrives
    failed = run()
    assert not failed.success
    (failure,) = [e for e in failed.all_events if e.is_step_failure]
    assert "not written" in str(failure.event_specific_data) and f"{DAY}..{DAY} M2." in str(
        failure.event_specific_data
    )
    assert [r for r in series(pg) if r[0] == "M2"] == m2_before  # nothing of the failing group stored
    assert max(float(r[2]) for r in m2_before if r[2] is not None) < 1
    assert (
        pg.execute(f"SELECT {DAYS_WRITE} FROM ops.vee_days WHERE meter_id = 'M2'").fetchall() == days_before
    )
    assert [a for a in audit(pg) if a[5] == 5000] == []
    m1 = [r for r in series(pg) if r[0] == "M1"]
    assert [r[3] for r in m1].count("actual") == 96  # the passing group was written: its late actual
    assert len(audit(pg)) == len(trail_before) + 1  # M1: estimated -> actual


def test_one_meter_that_fails_the_suite_holds_back_only_its_own_series(
    pg: psycopg.Connection, lake: Lake
) -> None:
    """A group is up to 10,000 meter-days: one odd meter held back the series of every other meter in
    it. The meters whose own series fail are found by halving the group; the others are written."""
    meters = [f"M{n}" for n in range(1, 8)]
    # M3 and M6 sent two readings each: too few for a spike limit, so VEE keeps what they read.
    sent = {
        meter: day_messages(meter, DAY, seed=n)[: 2 if meter in ("M3", "M6") else None]
        for n, meter in enumerate(meters)
    }
    ingest(pg, lake, "b1", [m for messages in sent.values() for m in messages])
    assert run_days(pg, DAY, DAY, CFG, now=NOW).written
    before = {meter: [r for r in series(pg) if r[0] == meter] for meter in meters}
    trail = pg.execute("SELECT meter_id, count(*) FROM ops.vee_audit GROUP BY 1").fetchall()
    for meter in ("M3", "M6"):  # 5,000 kWh, stored by a path that bypassed the record rules
        pg.execute(
            "UPDATE ops.meter_readings SET energy_kwh = 5000 WHERE meter_id = %s AND reading_start = %s",
            (meter, pd.Timestamp(DAY.isoformat(), tz="UTC").to_pydatetime()),
        )
    pg.execute(  # and every meter's noon reading is read again, higher: a change VEE must store
        "UPDATE ops.meter_readings SET energy_kwh = energy_kwh + 0.5 WHERE reading_start = %s",
        (pd.Timestamp(f"{DAY}T12:00:00Z").to_pydatetime(),),
    )
    pg.commit()
    run = run_days(pg, DAY, DAY, CFG, now=NOW)
    assert not run.written and run.refused == ("M3", "M6")
    assert not run.suite.success  # the group's suite result, for the check and the failure message
    after = {meter: [r for r in series(pg) if r[0] == meter] for meter in meters}
    for meter in meters:
        if meter in run.refused:
            assert after[meter] == before[meter]  # nothing of it stored: its series stays as it was
        else:
            assert after[meter] != before[meter] and len(after[meter]) == 96
    refused_trail = pg.execute(
        "SELECT meter_id, count(*) FROM ops.vee_audit WHERE meter_id IN ('M3', 'M6') GROUP BY 1"
    ).fetchall()
    assert sorted(refused_trail) == sorted(r for r in trail if r[0] in ("M3", "M6"))
    assert pg.execute("SELECT count(*) FROM ops.vee_readings WHERE energy_kwh >= 5000").fetchone() == (0,)


def test_a_reviewers_decision_does_not_store_a_series_that_fails_the_suite(
    pg: psycopg.Connection, lake: Lake
) -> None:
    """The reviewer's re-run of VEE is guarded as the asset is: the decision stands, the failing
    series is not written, and the caller gets the error (the CLI prints it and exits 1, the API
    answers the decision with `vee_error`)."""
    messages = day_messages("M2", DAY, seed=3)[:2]
    messages[0] = json.dumps({**json.loads(messages[0]), "voltage_v": 262.0})  # flagged for review
    ingest(pg, lake, "b1", messages)
    run_days(pg, DAY, DAY, CFG, now=NOW)
    before, trail = series(pg), audit(pg)
    second = pd.Timestamp(DAY.isoformat(), tz="UTC") + pd.Timedelta(minutes=15)
    pg.execute(
        "UPDATE ops.meter_readings SET energy_kwh = 5000 WHERE meter_id = 'M2' AND reading_start = %s",
        (second.to_pydatetime(),),
    )
    pg.commit()
    (item,) = review.list_items(pg)
    decided = decide(pg, "approve", item.batch_id, item.record_index, by="ana", note="tap change")
    assert decided.item.status == "approved" and decided.vee_status is None
    assert re.search(r"approved decision is recorded.*not written", decided.vee_error or "")
    assert review.get_item(pg, item.batch_id, item.record_index).status == "approved"
    assert series(pg) == before and audit(pg) == trail


def test_a_discarded_dead_letter_is_still_read_and_rejected_to_vee(pg: psycopg.Connection) -> None:
    """`metrify dlq discard` closes a dead letter no fix will let in; VEE still sees the reading as
    read and rejected at ingest (it read only unresolved rows, so a discard turned it into a gap). A
    reading a replay accepted is the stored one's business, not the quarantine's."""
    from metrify_assets.meters.vee.store import _quarantined
    from metrify_assets.quality.quarantine import DISCARDED

    def payload(minute: int) -> str:
        return json.dumps(
            {"meter_id": "M1", "reading_start": f"2026-03-28T12:{minute:02d}:00Z", "interval_minutes": 15}
        )

    for index, resolved_by in enumerate((None, f"{DISCARDED}ops: junk", "replay-b2")):
        pg.execute(
            "INSERT INTO ops.quarantine (batch_id, record_index, source, payload, reasons, quarantined_at,"
            " resolved_at, resolved_by) VALUES ('b1', %s, 'meter_readings', %s, 'missing_energy_kwh', now(),"
            " CASE WHEN %s::text IS NULL THEN NULL ELSE now() END, %s)",
            (index, payload(15 * index), resolved_by, resolved_by),
        )
    decisions = pd.DataFrame(columns=["batch_id", "record_index", "status", "decided_by"])
    found, unplaced = _quarantined(pg, ["b1"], decisions)
    assert sorted(found["reading_start"].dt.minute) == [0, 15] and not unplaced
