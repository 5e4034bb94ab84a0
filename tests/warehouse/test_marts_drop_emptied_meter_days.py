"""A meter-day that loses all its readings leaves the marts on the next run over its day.

A `metrify ingest --replaces` withdrawal (or a raw rollback) deletes a meter-day's readings and stamps
the day in `ops.retouched_days`; the next run re-VEEs the day and builds the marts over it. dbt's
delete+insert replaces only the keys the select returns, so the meter-day's rows stayed in the
consumption facts and what is built from them until a full refresh. The `rebuilt_days` strategy
(macros/rebuilt_days.sql) deletes the rebuilt days' rows the select no longer returns: after the run
every mart equals a full build, the other meters' rows of the day included, and a day the data
lifecycle moved out of PostgreSQL keeps its rows (it is not an emptied day).
"""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest

from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.store import run_days as run_vee_days
from metrify_assets.resources import PostgresResource
from metrify_assets.warehouse.connection import dbt_env_from_url
from tests.warehouse.test_dbt_build import dbt_build, failures, insert
from tests.warehouse.test_marts_survive_cleanup import FIRST, clean_up, differences, load
from tests.warehouse.vee_rows import local_day_grid

pytestmark = pytest.mark.postgres

# A registered meter of its own region and segment, reading on two days; the first one is withdrawn.
# Its first day gone, its first reading is the day after, so VEE expects nothing of it that day.
GONE = "M-WDR-EMPTIED"
EMPTIED = FIRST + timedelta(days=3)
ARCHIVED = FIRST  # the day the lifecycle deletes from `ops`
MODELS = ("--select", "path:models/marts", "int_meter_reading_days", "--exclude-resource-type", "test")
# The meter-day marts and what is built from them, with the column of the emptied day.
BY_DAY = {
    "intermediate.int_meter_reading_days": "local_date",
    "marts.fct_consumption_hourly": "local_date",
    "marts.fct_consumption_daily": "local_date",
    "marts.fct_peak_demand": "local_date",
    "marts.fct_consumption_daily_by_region": "local_date",
    "marts.fct_weather_impact": "local_date",
    "marts.fct_weather_sensitivity": "as_of_date",
}


def add_meter(conn: psycopg.Connection) -> None:
    meter = pd.DataFrame(
        {
            "meter_id": [GONE],
            "segment": ["industrial"],
            "region": ["west-emptied"],
            "weather_station_id": ["WS-LON"],
            "grid_node_id": ["GN-1"],
            "timezone": ["Europe/London"],
        }
    )
    insert(conn, "meters", meter, {})
    rng = np.random.default_rng(7)
    starts = [
        s for day in (EMPTIED, EMPTIED + timedelta(days=1)) for s in local_day_grid(day, "Europe/London", 15)
    ]
    readings = pd.DataFrame(
        {
            "meter_id": GONE,
            "reading_start": [s.to_pydatetime() for s in starts],
            "interval_minutes": 15,
            "energy_kwh": rng.uniform(5.0, 9.0, len(starts)).round(4),
            "direction": "import",
        }
    )
    insert(conn, "meter_readings", readings, {"record_version": 1, "batch_id": "L-emptied-v1"})


def withdraw(conn: psycopg.Connection) -> None:
    """What a replacing file's batch does to the rows it no longer holds (ingestion/replacements.py):
    deletes them and stamps their day in `ops.retouched_days`; then the run's VEE over the day."""
    deleted = conn.execute(
        "DELETE FROM ops.meter_readings WHERE meter_id = %s "
        "AND (reading_start AT TIME ZONE 'Europe/London')::date = %s",
        (GONE, EMPTIED),
    ).rowcount
    assert deleted == 96
    conn.execute(
        "INSERT INTO ops.retouched_days (batch_id, source, day) VALUES ('L-emptied-v2', 'meter_readings', %s)",
        (EMPTIED,),
    )
    conn.commit()
    run_vee_days(conn, EMPTIED, EMPTIED, VeeConfig())
    left = conn.execute(
        "SELECT (SELECT count(*) FROM ops.vee_readings WHERE meter_id = %(m)s AND local_date = %(d)s)"
        " + (SELECT count(*) FROM ops.vee_days WHERE meter_id = %(m)s AND local_date = %(d)s)",
        {"m": GONE, "d": EMPTIED},
    ).fetchone()
    assert left == (0,), "the meter-day has no rows upstream any more"


def build(url: str, target: Path, *flags: str) -> None:
    env = {**os.environ, **dbt_env_from_url(url), "METRIFY_DBT_TARGET": "postgres"}
    assert failures(dbt_build(env, target, *flags)) == {}


def window(first: date, last: date) -> tuple[str, str]:
    return "--vars", json.dumps({"min_date": first.isoformat(), "max_date": last.isoformat()})


def rows(conn: psycopg.Connection, where: str = "true") -> dict[str, list[tuple[Any, ...]]]:
    """Every meter-day model's rows matching `where` (on its day column `day`), in one order."""
    found = {}
    for table, day in BY_DAY.items():
        sql = f"SELECT * FROM {table} WHERE {where.format(day=day)} ORDER BY 1, 2, 3"
        found[table] = conn.execute(sql, {"emptied": EMPTIED, "archived": ARCHIVED, "meter": GONE}).fetchall()
    conn.commit()
    return found


def the_meter(conn: psycopg.Connection) -> dict[str, int]:
    """Rows of the withdrawn meter, or of its region (it is the region's only meter), on the emptied day."""
    counts = {}
    for table, day in BY_DAY.items():
        columns = {c.name for c in conn.execute(f"SELECT * FROM {table} LIMIT 0").description or []}
        mine = "meter_id = %(meter)s" if "meter_id" in columns else "region = 'west-emptied'"
        row = conn.execute(
            f"SELECT count(*) FROM {table} WHERE {day} = %(emptied)s AND {mine}",
            {"emptied": EMPTIED, "meter": GONE},
        ).fetchone()
        counts[table] = int(row[0]) if row else 0
    conn.commit()
    return counts


def reading_count(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT reading_count FROM marts.dim_meter WHERE meter_id = %s", (GONE,)).fetchone()
    conn.commit()
    return int(row[0]) if row else -1


def assert_same(expected: dict[str, list[tuple[Any, ...]]], got: dict[str, list[tuple[Any, ...]]]) -> None:
    changed = {name: differences(expected[name], got[name])[:3] for name in expected}
    assert {name: diff for name, diff in changed.items() if diff} == {}


def test_an_emptied_meter_day_leaves_the_marts_and_an_archived_day_stays(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    add_meter(pg)
    load(pg)  # the week of the cleanup test, and VEE over it (the new meter's two days included)
    url, target = pg_resource.get_url(), tmp_path / "dbt"
    build(url, target, "--full-refresh", "--exclude-resource-type", "test")
    before = the_meter(pg)
    assert all(before.values()), before
    assert reading_count(pg) == 2 * 96

    withdraw(pg)
    # The next run over the stamped day (Dagster's partition): the meter-day leaves every model.
    build(url, target, *window(EMPTIED, EMPTIED), *MODELS)
    assert the_meter(pg) == dict.fromkeys(BY_DAY, 0)
    assert reading_count(pg) == 96
    other = pg.execute(
        "SELECT count(*) FROM marts.fct_consumption_daily WHERE local_date = %s AND meter_id <> %s",
        (EMPTIED, GONE),
    ).fetchone()
    assert other == (3,), "the other meters keep the day"
    incremental = rows(pg)
    build(url, target, "--full-refresh", *MODELS)
    assert_same(rows(pg), incremental)

    # The lifecycle deletes the oldest day from `ops`; a run over it (a backfill, a late-day run that
    # reaches it) and the emptied day keeps every row of the archived day, as a run without days does.
    archived = rows(pg, "{day} = %(archived)s")
    assert all(archived.values()), "nothing to compare"
    clean_up(pg, ARCHIVED)
    build(url, target, *window(ARCHIVED, EMPTIED), *MODELS)
    assert_same(archived, rows(pg, "{day} = %(archived)s"))
    build(url, target, *MODELS)
    assert_same(archived, rows(pg, "{day} = %(archived)s"))
