"""The marts keep their history when the data lifecycle deletes old days from `ops`.

Once a day is older than the hot window and verified in the lake, the lifecycle deletes its rows from
`ops`: the meter-day tables by the meter's local day (readings, VEE's series and day summaries, anomaly
scores, enrichment), grid samples and weather observations by UTC day, and after a longer retention the
ledger, the quarantine, the ingest days and the grid figures and closed state events by their day
(`metrify_assets/lifecycle/retention.py`). Here a week of every source
goes through VEE and the grid analysis, the marts are built, the two oldest days are deleted from `ops`
as the lifecycle deletes them, and the next incremental `dbt build` must leave every mart's rows of
those days as they were; so must a partitioned run over the deleted days (a backfill, or a late-day run
that reaches an archived day), while the recent days are still rebuilt.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest

from metrify_assets.grid.analysis import GridConfig
from metrify_assets.grid.store import run_days as run_grid_days
from metrify_assets.meters.time_of_use import tou_period
from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.store import run_days as run_vee_days
from metrify_assets.resources import PostgresResource
from tests.warehouse.test_dbt_build import failures, insert, run_dbt_build
from tests.warehouse.vee_rows import local_day_grid

pytestmark = pytest.mark.postgres

FIRST = date(2026, 2, 2)  # a Monday; no daylight-saving change in the week
DAYS = 7
LAST = FIRST + timedelta(days=DAYS - 1)
ARCHIVED_LAST = FIRST + timedelta(days=1)  # the lifecycle deletes FIRST and the day after
METERS = pd.DataFrame(
    {
        "meter_id": ["M-LON", "M-NYC", "M-BER"],
        "segment": ["residential", "commercial", "residential"],
        "region": ["north", "east", "north"],
        "weather_station_id": ["WS-LON", "WS-NYC", "WS-BER"],
        "grid_node_id": ["GN-1", "GN-2", "GN-1"],
        "timezone": ["Europe/London", "America/New_York", "Europe/Berlin"],
    }
)
TIMEZONES = dict(zip(METERS["meter_id"], METERS["timezone"], strict=True))
SOURCES = ("meter_readings", "grid_status", "weather_observations")


def days() -> list[date]:
    return [FIRST + timedelta(days=i) for i in range(DAYS)]


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), UTC)


def readings(rng: np.random.Generator) -> pd.DataFrame:
    """Quarter-hours of every local day, a few missing; M-BER exports around its local noon."""
    rows = []
    for meter, timezone in TIMEZONES.items():
        for day in days():
            for start in local_day_grid(day, timezone, 15):
                if rng.random() < 0.03:
                    continue
                kwh = round(float(rng.uniform(0.05, 1.5)), 4)
                exporting = meter == "M-BER" and 11 <= start.tz_convert(timezone).hour < 13
                rows.append(
                    {
                        "meter_id": meter,
                        "reading_start": start.to_pydatetime(),
                        "interval_minutes": 15,
                        "energy_kwh": -kwh if exporting else kwh,
                        "direction": "export" if exporting else "import",
                        "record_version": 1,
                        "batch_id": f"L-meter_readings-{day}",
                    }
                )
    return pd.DataFrame(rows)


def localized(frame: pd.DataFrame) -> pd.DataFrame:
    """The readings with their meter's local date and hour."""
    frame = frame.copy()
    local = [
        pd.Timestamp(start).tz_convert(TIMEZONES[meter])
        for meter, start in zip(frame["meter_id"], frame["reading_start"], strict=True)
    ]
    frame["local_date"] = [ts.date() for ts in local]
    frame["local_hour"] = [ts.hour for ts in local]
    return frame


def grid_samples(rng: np.random.Generator) -> pd.DataFrame:
    """5-minute samples of two nodes over the UTC days; GN-1 leaves 100 mHz for 20 minutes on the first
    day and on the second to last (alert events)."""
    rows = []
    for node in ("GN-1", "GN-2"):
        for day in days():
            for i in range(288):
                measured = at(day, 0) + timedelta(minutes=5 * i)
                frequency = 50.0 + float(rng.normal(0, 0.015))
                if node == "GN-1" and day in (FIRST, LAST - timedelta(days=1)) and 120 <= i < 124:
                    frequency = 50.13
                rows.append(
                    {
                        "grid_node_id": node,
                        "measured_at": measured,
                        "frequency_hz": round(frequency, 4),
                        "voltage_v": round(float(rng.uniform(225, 235)), 2),
                        "load_mw": round(float(rng.uniform(10, 20)), 2),
                    }
                )
    return pd.DataFrame(rows)


def observations(rng: np.random.Generator) -> pd.DataFrame:
    """Hourly observations of each station from the UTC day before the first to the day after the last,
    so every local day of the meters has its weather."""
    rows = []
    for station in ("WS-LON", "WS-NYC", "WS-BER"):
        for hour in range((DAYS + 2) * 24):
            observed = at(FIRST - timedelta(days=1), 0) + timedelta(hours=hour)
            rows.append(
                {
                    "station_id": station,
                    "observed_at": observed,
                    "temperature_c": round(
                        6.0 + 5.0 * math.sin(hour / 24 * 2 * math.pi) + rng.normal(0, 1), 2
                    ),
                    "humidity_pct": 80.0,
                    "pressure_hpa": 1010.0,
                    "wind_speed_ms": round(float(rng.uniform(0, 12)), 1),
                    "precipitation_mm": round(float(max(rng.normal(0, 1.5), 0.0)), 1),
                }
            )
    return pd.DataFrame(rows)


def load(conn: psycopg.Connection) -> None:
    """A week of every source into `ops`, then VEE and the grid analysis over it, as the assets do."""
    rng = np.random.default_rng(20260202)
    insert(conn, "meters", METERS, {})
    read = readings(rng)
    insert(conn, "meter_readings", read, {})
    conn.commit()
    run_vee_days(conn, FIRST, LAST, VeeConfig())

    local = localized(read)
    enriched = local.iloc[::4]
    enriched = enriched.assign(
        tou_period=[
            tou_period(hour, day.weekday() >= 5)
            for hour, day in zip(enriched["local_hour"], enriched["local_date"], strict=True)
        ]
    )
    columns = ["meter_id", "reading_start", "interval_minutes", "energy_kwh", "direction"]
    insert(
        conn, "enriched_meter_readings", enriched[[*columns, "tou_period", "local_date", "local_hour"]], {}
    )
    # Scored on the reading's local day (15:00 in New York, 20:00 in London and 21:00 in Berlin).
    scores = local[["meter_id", "reading_start"]].assign(
        score=rng.normal(0, 1.5, len(local)), scored_at=[at(day, 20) for day in local["local_date"]]
    )
    scores["is_anomaly"] = scores["score"].abs() > 3
    insert(conn, "anomaly_scores", scores, {"model_version": "test-1"})
    meter_days = local.groupby(["meter_id", "local_date"]).agg(
        intervals=("energy_kwh", "size"), actual_kwh=("energy_kwh", "sum")
    )
    meter_days = meter_days.reset_index().assign(
        expected_kwh=lambda f: f["actual_kwh"], ratio=1.0, score=0.1, is_anomaly=False
    )
    insert(conn, "anomaly_meter_days", meter_days, {"baseline_anomalies": 0, "model_version": "test-1"})

    insert(conn, "grid_status", grid_samples(rng), {"record_version": 1, "batch_id": "L-grid_status"})
    insert(conn, "weather_observations", observations(rng), {"record_version": 1, "batch_id": "L-weather"})

    # One batch per source and day, written at 06:00 UTC that day, three of its records quarantined.
    reasons = ["out_of_range", "schema", "out_of_range,negative_import"]
    for day in days():
        batches = pd.DataFrame(
            {
                "batch_id": [f"L-{source}-{day}" for source in SOURCES],
                "source": list(SOURCES),
                "records_in": [100, 50, 30],
                "accepted": [97, 47, 27],
                "flagged": [2, 1, 0],
                "quarantined": [3, 3, 3],
                "quality_score": [97.0, 94.0, 90.0],
                "processed_at": [at(day, 6)] * len(SOURCES),
            }
        )
        insert(conn, "ingest_ledger", batches, {"origin": "landing", "origin_ref": "f", "raw_key": "k"})
        quarantine = pd.DataFrame(
            {
                "batch_id": [b for b in batches["batch_id"] for _ in reasons],
                "record_index": list(range(len(reasons))) * len(SOURCES),
                "source": [s for s in SOURCES for _ in reasons],
                "reasons": reasons * len(SOURCES),
                "quarantined_at": [at(day, 6)] * (len(reasons) * len(SOURCES)),
            }
        )
        insert(conn, "quarantine", quarantine, {"payload": "{}"})
        insert(
            conn,
            "ingest_days",
            batches[["batch_id", "source"]].assign(day=day, records=batches["accepted"]),
            {},
        )
    conn.commit()
    run_grid_days(conn, FIRST, LAST, GridConfig())  # what the grid_stability asset writes


LOCAL_DAY = (
    "(({time} AT TIME ZONE coalesce((SELECT m.timezone FROM ops.meters AS m "
    "WHERE m.meter_id = t.meter_id), 'UTC'))::date <= %(last)s)"
)
UTC_DAY = "(({time} AT TIME ZONE 'UTC')::date <= %(last)s)"
# What the lifecycle deletes for the days up to `last`, table by table.
CLEANUP = {
    "meter_readings": LOCAL_DAY.format(time="reading_start"),
    "vee_readings": "local_date <= %(last)s",
    "vee_days": "local_date <= %(last)s",
    "anomaly_scores": LOCAL_DAY.format(time="reading_start"),
    "anomaly_meter_days": "local_date <= %(last)s",
    "enriched_meter_readings": "local_date <= %(last)s",
    "grid_status": UTC_DAY.format(time="measured_at"),
    "weather_observations": UTC_DAY.format(time="observed_at"),
    "quarantine": UTC_DAY.format(time="quarantined_at"),
    "ingest_ledger": UTC_DAY.format(time="processed_at"),
    "ingest_days": "day <= %(last)s",
    "grid_stability": "day <= %(last)s",
    "grid_state_events": "start_day <= %(last)s AND ended_at IS NOT NULL",
}


def clean_up(conn: psycopg.Connection, last: date) -> dict[str, int]:
    """Delete every `ops` row of the days up to `last` and record the tiered datasets' days as left
    PostgreSQL (`ops.lifecycle_days`), as the lifecycle does; rows deleted per table."""
    deleted = {}
    with conn.cursor() as cur:
        for table, condition in CLEANUP.items():
            cur.execute(f"DELETE FROM ops.{table} AS t WHERE {condition}", {"last": last})
            deleted[table] = cur.rowcount
        for dataset in SOURCES:
            cur.execute(
                "INSERT INTO ops.lifecycle_days (dataset, day, tier, storage_class, object_key, manifest_key, "
                "row_count, bytes, checksum, sha256, verified_at, moved_at, hot_deleted_at, hot_rows_deleted) "
                "SELECT %s, d::date, 'warm', 'STANDARD', 'k', 'm', 1, 1, 'c', 's', now(), now(), now(), 1 "
                "FROM generate_series(%s::date, %s::date, interval '1 day') AS d",
                (dataset, FIRST, last),
            )
    conn.commit()
    return deleted


@dataclass(frozen=True)
class Mart:
    name: str
    key: tuple[str, ...]
    archived: str  # the rows of the deleted days


LOCAL_DATE = "local_date <= %(last)s"
UTC_HOUR = "hour_start_utc < %(end)s"
PROCESSING_DAY = "activity_date <= %(last)s"
MARTS = (
    # Every version of this week's meters (the snapshot keeps other modules' meters): the reading span
    # and count must still include the deleted days.
    Mart("dim_meter", ("meter_id", "version_number"), "meter_id IN ('M-LON', 'M-NYC', 'M-BER')"),
    Mart("fct_consumption_hourly", ("meter_id", "hour_start_utc"), LOCAL_DATE),
    Mart("fct_consumption_daily", ("meter_id", "local_date"), LOCAL_DATE),
    Mart("fct_consumption_daily_by_region", ("region", "segment", "local_date"), LOCAL_DATE),
    Mart("fct_peak_demand", ("meter_id", "local_date"), LOCAL_DATE),
    Mart("fct_weather_impact", ("region", "segment", "local_date"), LOCAL_DATE),
    Mart("fct_weather_sensitivity", ("region", "segment", "as_of_date"), "as_of_date <= %(last)s"),
    Mart("fct_weather_conditions", ("station_id", "hour_start_utc"), UTC_HOUR),
    Mart("fct_grid_stability", ("grid_node_id", "hour_start_utc"), UTC_HOUR),
    Mart("fct_grid_state_events", ("grid_node_id", "started_at_utc"), "start_utc_date <= %(last)s"),
    Mart("fct_data_quality_daily", ("activity_date", "source"), PROCESSING_DAY),
    Mart("fct_quarantine_reasons_daily", ("activity_date", "source", "reason"), PROCESSING_DAY),
)
# calendar and seed: nothing in `ops` to lose; the forecast marts read `ops.load_*`, which no
# retention expires (were it to, those marts would have to become incremental)
WITHOUT_OPS = {"dim_date", "dim_time", "fct_load_forecast", "fct_forecast_accuracy"}


def archived_rows(conn: psycopg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Each mart's rows of the deleted days, ordered by its key."""
    params = {"last": ARCHIVED_LAST, "end": datetime.combine(ARCHIVED_LAST + timedelta(days=1), time())}
    rows = {}
    with conn.cursor() as cur:
        for mart in MARTS:
            cur.execute(
                f"SELECT * FROM marts.{mart.name} WHERE {mart.archived} ORDER BY {', '.join(mart.key)}",
                params,
            )
            rows[mart.name] = cur.fetchall()
    conn.commit()
    return rows


def same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9: a day rebuilt from the marts that keep it may sum in another order."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def differences(before: Sequence[tuple[Any, ...]], after: Sequence[tuple[Any, ...]]) -> list[str]:
    if len(before) != len(after):
        return [f"{len(before)} rows before, {len(after)} after"]
    return [
        f"{b} became {a}"
        for b, a in zip(before, after, strict=True)
        if not all(same(x, y) for x, y in zip(b, a, strict=True))
    ]


def assert_unchanged(before: dict[str, list[tuple[Any, ...]]], conn: psycopg.Connection) -> None:
    after = archived_rows(conn)
    changed = {name: differences(rows, after[name])[:3] for name, rows in before.items()}
    assert {name: diff for name, diff in changed.items() if diff} == {}


# Marts rebuilt by day, with a day column and a figure the test overwrites on the newest day: the run
# after the cleanup must rebuild that day while it keeps the deleted ones.
NEWEST_DAY = {
    "fct_consumption_daily": ("local_date", "kwh_import"),
    "fct_weather_impact": ("local_date", "kwh_import"),
    "fct_data_quality_daily": ("activity_date", "records_in"),
    "fct_quarantine_reasons_daily": ("activity_date", "record_count"),
}


def mark_newest_day(conn: psycopg.Connection) -> None:
    with conn.cursor() as cur:
        for name, (day, figure) in NEWEST_DAY.items():
            cur.execute(f"UPDATE marts.{name} SET {figure} = -1 WHERE {day} = %s", (LAST,))
            assert cur.rowcount > 0, name
    conn.commit()


def still_marked(conn: psycopg.Connection) -> set[str]:
    marked = set()
    with conn.cursor() as cur:
        for name, (day, figure) in NEWEST_DAY.items():
            cur.execute(f"SELECT count(*) FROM marts.{name} WHERE {day} = %s AND {figure} = -1", (LAST,))
            row = cur.fetchone()
            if row and row[0]:
                marked.add(name)
    conn.commit()
    return marked


def test_marts_keep_the_days_deleted_from_ops(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    load(pg)
    url, target = pg_resource.get_url(), tmp_path / "dbt"
    assert failures(run_dbt_build(url, target, "--full-refresh")) == {}

    with pg.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'")
        every_mart = {row[0] for row in cur.fetchall()}
    assert every_mart - WITHOUT_OPS == {m.name for m in MARTS}, "a new mart: add it to MARTS"
    before = archived_rows(pg)
    assert {name for name, rows in before.items() if not rows} == set(), "nothing to compare"
    assert len(before["fct_consumption_daily"]) == 2 * len(METERS)
    assert len(before["fct_data_quality_daily"]) == 2 * len(SOURCES)

    deleted = clean_up(pg, ARCHIVED_LAST)
    assert {table for table, n in deleted.items() if n == 0} == set()
    mark_newest_day(pg)

    # The next run: incremental, no partition (as `dbt build` by hand).
    assert failures(run_dbt_build(url, target)) == {}
    assert_unchanged(before, pg)
    assert still_marked(pg) == set(), "the run should rebuild the newest day"

    # A partitioned run of the tables over the deleted days (a backfill, or a late-day run: Dagster
    # always passes the days), without the tests the full run already ran.
    window = json.dumps({"min_date": FIRST.isoformat(), "max_date": ARCHIVED_LAST.isoformat()})
    tables = ("--select", "path:models/marts", "int_meter_reading_days", "--exclude-resource-type", "test")
    assert failures(run_dbt_build(url, target, "--vars", window, *tables)) == {}
    assert_unchanged(before, pg)
