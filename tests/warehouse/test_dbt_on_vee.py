"""The marts on VEE's own output: the readings of the warehouse data set go through VEE's store
(`run_days`, what `vee_meter_readings` runs) instead of the tests' hand-made VEE rows, and `dbt build`
passes every test, so the warehouse and VEE agree on the contract of `ops.vee_readings` and
`ops.vee_days` (signs, day placement, DST days, counts, rounding)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import psycopg
import pytest

from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.store import run_days
from metrify_assets.resources import PostgresResource
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
