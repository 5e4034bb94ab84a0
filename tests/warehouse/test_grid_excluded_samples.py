"""fct_grid_stability leaves out the grid samples ops.grid_stability left out as sensor faults, on both
dbt targets: a flagged sample awaiting review that its neighbours do not corroborate is in no frequency
figure of the mart and counts in `excluded_samples`; an approved flagged sample counts like any other.

The data are this module's own nodes on a day of their own (the database is shared with other files):
the grid asset's store runs the day (`run_days`), then dbt builds that day alone, as Dagster's
partitioned runs do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import pytest

from metrify_assets.env import resolve_snowflake
from metrify_assets.grid.analysis import GridConfig
from metrify_assets.grid.store import run_days
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.build import snowflake_resource
from metrify_assets.warehouse.connection import dbt_env_from_url, environment, partition_env
from metrify_assets.warehouse.snowflake import warehouse_load
from tests.warehouse.test_dbt_build import dbt_build, failures, insert
from tests.warehouse.test_snowflake import INCREMENTAL_VARS, snowflake_env

pytestmark = pytest.mark.postgres

DAY = date(2025, 11, 19)
TEN = datetime(2025, 11, 19, 10, tzinfo=UTC)
FAULTY, LONE = "GN-XS-FAULT", "GN-XS-LONE"
BATCH = "B-XS-1"
FLAG = "frequency_out_of_range"
FAULT_AT, APPROVED_AT = TEN + timedelta(minutes=20), TEN + timedelta(minutes=40)
MART = ("--select", "+fct_grid_stability", "--exclude-resource-type", "test")
COLUMNS = "grid_node_id, hour_start_utc, sample_count, excluded_samples, mean_frequency_hz, "
COLUMNS += "std_deviation_hz, max_abs_deviation_hz, share_beyond_50mhz, share_beyond_200mhz, max_voltage_v"


def samples() -> pd.DataFrame:
    """FAULTY: 10:00-10:59 at 1 minute within 10 mHz of 50 Hz, but a stuck reading of 50.9 Hz at 10:20
    (flagged, awaiting review) and 50.6 Hz at 10:40 (flagged, approved), each with a voltage spike.
    LONE: 09:00-09:59 and one flagged 49.2 Hz sample at 10:00, alone in its hour."""
    minutes = [TEN + timedelta(minutes=i) for i in range(60)]
    frequency = [50.01 if i % 2 else 49.99 for i in range(60)]
    frequency[20], frequency[40] = 50.9, 50.6
    voltage = [230.0] * 60
    voltage[20], voltage[40] = 260.0, 250.0
    lone = [TEN - timedelta(minutes=60 - i) for i in range(61)]
    return pd.DataFrame(
        {
            "grid_node_id": [FAULTY] * 60 + [LONE] * 61,
            "measured_at": minutes + lone,
            "frequency_hz": frequency + [50.0] * 60 + [49.2],
            "voltage_v": voltage + [231.0] * 61,
            "load_mw": [15.0] * 121,
            "quality_flags": [FLAG if i in (20, 40) else None for i in range(60)] + [None] * 60 + [FLAG],
        }
    )


def approve(conn: psycopg.Connection, node: str, at: datetime, index: int) -> None:
    """A reviewer's approval of the flagged sample, as `metrify review` stores it."""
    conn.execute(
        "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons, status, "
        "decided_by, decided_at) VALUES (%s, %s, 'grid_status', %s, %s, 'approved', 'test', now())",
        (BATCH, index, f"{node}|{at.isoformat()}", FLAG),
    )


@pytest.fixture(scope="module")
def grid_day(pg_resource: PostgresResource) -> Iterator[psycopg.Connection]:
    """The day's samples stored and run by the grid asset's store, the 10:40 sample approved."""
    with pg_resource.connect(autocommit=True) as conn:
        insert(conn, "grid_status", samples(), {"record_version": 1, "batch_id": BATCH})
        approve(conn, FAULTY, APPROVED_AT, 40)
        run_days(conn, DAY, DAY, GridConfig())
        yield conn


def ops_hours(conn: psycopg.Connection) -> pd.DataFrame:
    rows = conn.execute(
        "SELECT grid_node_id, hour_start AT TIME ZONE 'UTC', sample_count, excluded_samples, "
        "mean_deviation_hz, std_deviation_hz, max_abs_deviation_hz FROM ops.grid_stability "
        "WHERE grid_node_id = ANY(%s) AND day = %s ORDER BY 1, 2",
        ([FAULTY, LONE], DAY),
    ).fetchall()
    columns = ["grid_node_id", "hour_start_utc", "sample_count", "excluded_samples"]
    frame = pd.DataFrame(
        rows, columns=[*columns, "mean_deviation_hz", "std_deviation_hz", "max_abs_deviation_hz"]
    )
    return frame.set_index(["grid_node_id", "hour_start_utc"])


def agrees_with_ops(mart: pd.DataFrame, ops: pd.DataFrame) -> None:
    """The mart's sample-computed columns are ops.grid_stability's, hour by hour."""
    mart = mart.assign(hour_start_utc=pd.to_datetime(mart["hour_start_utc"])).set_index(
        ["grid_node_id", "hour_start_utc"]
    )
    ops.index = ops.index.set_levels(pd.to_datetime(ops.index.levels[1]), level=1)
    assert list(mart.index) == list(ops.index)
    pairs = {
        "mean_frequency_hz": ops["mean_deviation_hz"].astype(float) + 50.0,
        "std_deviation_hz": ops["std_deviation_hz"].astype(float),
        "max_abs_deviation_hz": ops["max_abs_deviation_hz"].astype(float),
    }
    for column, expected in pairs.items():
        np.testing.assert_allclose(mart[column].astype(float), expected, atol=5e-7, err_msg=column)
    for column in ("sample_count", "excluded_samples"):
        assert mart[column].astype(int).tolist() == ops[column].astype(int).tolist(), column


def check_day(mart: pd.DataFrame, ops: pd.DataFrame) -> None:
    agrees_with_ops(mart, ops)
    hours = mart.set_index(["grid_node_id", pd.to_datetime(mart["hour_start_utc"]).dt.hour])
    faulty = hours.loc[(FAULTY, 10)]
    kept = [50.01 if i % 2 else 49.99 for i in range(60) if i not in (20, 40)] + [50.6]
    assert (int(faulty["sample_count"]), int(faulty["excluded_samples"])) == (60, 1)
    # The stuck 50.9 Hz is in no frequency figure; the approved 50.6 Hz is.
    assert float(faulty["max_abs_deviation_hz"]) == pytest.approx(0.6, abs=1e-9)
    assert float(faulty["mean_frequency_hz"]) == pytest.approx(float(np.mean(kept)), abs=5e-7)
    assert float(faulty["share_beyond_200mhz"]) == pytest.approx(1 / 59)
    assert float(faulty["max_voltage_v"]) == 260.0  # its voltage counts, as in ops.grid_stability
    lone = hours.loc[(LONE, 10)]  # an hour of nothing but a fault: no frequency figures
    assert (int(lone["sample_count"]), int(lone["excluded_samples"])) == (1, 1)
    assert lone[["mean_frequency_hz", "std_deviation_hz", "share_beyond_50mhz"]].isna().all()
    assert int(hours.loc[(LONE, 9), "excluded_samples"]) == 0


def test_the_store_records_the_samples_it_left_out(grid_day: psycopg.Connection) -> None:
    rows = grid_day.execute(
        "SELECT grid_node_id, measured_at FROM ops.grid_excluded_samples WHERE day = %s ORDER BY 1, 2", (DAY,)
    ).fetchall()
    assert rows == [(FAULTY, FAULT_AT), (LONE, TEN)]


def test_postgres_mart_leaves_out_what_grid_stability_left_out(
    grid_day: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """Built, then built again incrementally on a table from before `excluded_samples` (a deployment
    upgraded): the column is appended and the day's hours get it."""
    env = {**os.environ, **dbt_env_from_url(pg_resource.get_url()), "METRIFY_DBT_TARGET": "postgres"}

    def build() -> pd.DataFrame:
        assert not failures(dbt_build({**env, **partition_env((DAY, DAY))}, tmp_path, *MART))
        rows = grid_day.execute(
            f"SELECT {COLUMNS} FROM marts.fct_grid_stability WHERE grid_node_id = ANY(%s) ORDER BY 1, 2",
            ([FAULTY, LONE],),
        )
        assert rows.description is not None
        return pd.DataFrame(rows.fetchall(), columns=[c.name for c in rows.description])

    check_day(build(), ops_hours(grid_day))
    grid_day.execute("ALTER TABLE marts.fct_grid_stability DROP COLUMN excluded_samples")
    check_day(build(), ops_hours(grid_day))


@pytest.mark.snowflake
def test_snowflake_mart_leaves_out_the_same_and_follows_an_approval(
    grid_day: psycopg.Connection,
    pg_resource: PostgresResource,
    snowflake_server: dict[str, Any],
    tmp_path: Path,
) -> None:
    """The raw copy carries the left-out samples to Snowflake; once a reviewer approves the fault and
    the day runs again, the copy drops it (its node-day has none left) and the mart counts it."""
    sf_env = snowflake_env(snowflake_server)
    resources = {"postgres": pg_resource, "snowflake": snowflake_resource(resolve_snowflake(sf_env))}

    def build() -> pd.DataFrame:
        with environment(sf_env):  # the resource reads its password from the environment
            assert dg.materialize([warehouse_load], resources=resources).success
        env = {**os.environ, **sf_env, **partition_env((DAY, DAY))}
        assert not failures(dbt_build(env, tmp_path, *MART, "--vars", json.dumps(INCREMENTAL_VARS)))
        with resources["snowflake"].get_connection() as sf:
            cur = sf.cursor()
            cur.execute(
                f"SELECT {COLUMNS} FROM marts.fct_grid_stability "
                f"WHERE grid_node_id IN ('{FAULTY}', '{LONE}') ORDER BY 1, 2"
            )
            return pd.DataFrame(cur.fetchall(), columns=[c[0].lower() for c in cur.description])

    check_day(build(), ops_hours(grid_day))

    approve(grid_day, FAULTY, FAULT_AT, 20)
    run_days(grid_day, DAY, DAY, GridConfig())
    mart = build()
    agrees_with_ops(mart, ops_hours(grid_day))
    faulty = mart[(mart["grid_node_id"] == FAULTY) & (pd.to_datetime(mart["hour_start_utc"]).dt.hour == 10)]
    assert int(faulty["excluded_samples"].item()) == 0
    assert float(faulty["max_abs_deviation_hz"].item()) == pytest.approx(0.9, abs=1e-9)
    with resources["snowflake"].get_connection() as sf:
        cur = sf.cursor()
        cur.execute(f"SELECT grid_node_id FROM raw.grid_excluded_samples WHERE day = '{DAY}'")
        assert [r[0] for r in cur.fetchall()] == [LONE]
