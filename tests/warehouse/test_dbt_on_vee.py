"""The marts on VEE's own output: the readings of the warehouse data set go through VEE's store
(`run_days`, what `vee_meter_readings` runs) instead of the tests' hand-made VEE rows, and `dbt build`
passes every test, so the warehouse and VEE agree on the contract of `ops.vee_readings` and
`ops.vee_days` (signs, day placement, DST days, counts, rounding)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.store import run_days
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake
from tests.meters.vee.test_store import NOW, day_messages, ingest
from tests.warehouse.test_dbt_build import METERS, failures, insert, make_ops_data, run_dbt_build

pytestmark = pytest.mark.postgres


def test_marts_build_on_vee_output(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    data = make_ops_data()
    insert(pg, "meters", METERS, {})
    insert(pg, "meter_readings", data.readings, {})
    pg.commit()
    run_days(pg, date(2026, 3, 27), date(2026, 3, 30), VeeConfig())

    results = run_dbt_build(pg_resource.get_url(), tmp_path, "--full-refresh")
    assert failures(results) == {}
    with pg.cursor() as cur:
        cur.execute(
            "SELECT count(*), sum(interval_count), sum(expected_intervals) FROM marts.fct_consumption_daily"
        )
        fact = cur.fetchone()
        cur.execute(
            "SELECT count(*), sum(actual_intervals + estimated_intervals + edited_intervals), "
            "sum(expected_intervals) FROM ops.vee_days"
        )
        assert fact == cur.fetchone()
        cur.execute(
            "SELECT expected_intervals FROM marts.fct_consumption_daily WHERE local_date = '2026-03-29'"
        )
        assert {row[0] for row in cur.fetchall()} >= {92}  # London's spring-forward day


def test_a_meters_first_day_counts_from_its_first_reading_in_the_marts(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """A meter commissioned at 13:00 whose head-end also sent one clock-shifted record stamped the
    evening before (quarantined). The marts had the meter on that evening's day (a failed interval:
    a 0 kWh, not billing-ready row, counted in the region's meters) and its first day 96 intervals
    long (52 estimated or missing, not billing-ready, completeness 0.46). Now: no row the day
    before, its first day is 44 intervals, complete and billing-ready; the record stays quarantined
    and the batch still reconciles."""
    began, london = date(2026, 5, 12), "Europe/London"
    before, after = began - timedelta(days=1), began + timedelta(days=1)
    pg.execute(
        "INSERT INTO ops.meters (meter_id, segment, region, timezone, installed_on) VALUES "
        "('FIRST-A', 'residential', 'firstday', %(tz)s, %(began)s), "
        "('FIRST-B', 'residential', 'firstday', %(tz)s, '2025-01-01')",
        {"tz": london, "began": began},
    )
    pg.commit()
    commissioned = day_messages("FIRST-A", began, skip=set(range(52)), tz=london)  # from 13:00
    stray = {**json.loads(commissioned[0]), "reading_start": "2026-05-11T23:46:00+01:00"}
    messages = [
        *commissioned,
        *day_messages("FIRST-A", after, seed=1, tz=london),
        *day_messages("FIRST-B", began, seed=2, tz=london),
        *day_messages("FIRST-B", after, seed=3, tz=london),
        json.dumps(stray),
    ]
    ingest(pg, Lake(str(tmp_path / "lake")), "first1", messages)
    run_days(pg, before, after, VeeConfig(), now=NOW)

    results = run_dbt_build(pg_resource.get_url(), tmp_path / "dbt", "--full-refresh")
    assert failures(results) == {}
    daily = pg.execute(
        "SELECT meter_id, local_date, expected_intervals, interval_count, completeness, billing_ready "
        "FROM marts.fct_consumption_daily WHERE region = 'firstday' ORDER BY 1, 2"
    ).fetchall()
    assert daily == [
        ("FIRST-A", began, 44, 44, 1.0, True),
        ("FIRST-A", after, 96, 96, 1.0, True),
        ("FIRST-B", began, 96, 96, 1.0, True),
        ("FIRST-B", after, 96, 96, 1.0, True),
    ]
    regions = pg.execute(
        "SELECT local_date, meter_count, billing_ready_meters, avg_completeness "
        "FROM marts.fct_consumption_daily_by_region WHERE region = 'firstday' ORDER BY 1"
    ).fetchall()
    assert regions == [(began, 2, 2, 1.0), (after, 2, 2, 1.0)]
    assert pg.execute("SELECT reasons FROM ops.quarantine WHERE batch_id = 'first1'").fetchall() == [
        ("timestamp_misaligned",)
    ]
    assert pg.execute(
        "SELECT records_in, accepted + quarantined FROM ops.ingest_ledger WHERE batch_id = 'first1'"
    ).fetchone() == (len(messages), len(messages))
