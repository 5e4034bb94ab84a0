"""`dbt build` on a small hand-made `ops` data set; marts are checked against pandas.

One build per module (it takes seconds): a module fixture loads the data, builds, and the tests
read the marts. Expected values are computed independently from the same frames with pandas. The
consumption marts read VEE's billing-grade series: the data set holds VEE's output for the readings
(`tests/warehouse/vee_rows.py`), kept as read except for a few estimated, edited and failed intervals.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest

from metrify_assets.grid.analysis import GridConfig
from metrify_assets.grid.store import run_days as run_grid_days
from metrify_assets.meters.time_of_use import tou_period
from metrify_assets.quality.quarantine import reason_code
from metrify_assets.resources import PostgresResource
from metrify_assets.storage.migrate import truncate_ops
from metrify_assets.warehouse.connection import dbt_env_from_url, partition_env
from metrify_assets.warehouse.paths import DBT_PROJECT_DIR
from metrify_assets.warehouse.project import dbt_executable
from tests.warehouse.vee_rows import (
    all_actual_vee,
    billing_series,
    estimated_energy,
    insert_all_actual_vee,
    insert_vee,
    net_kwh,
    set_intervals,
    vee_days,
)

pytestmark = pytest.mark.postgres

# 2026-03-29 is the UK's spring-forward day: a 23-hour local day in Europe/London.
DAY0 = datetime(2026, 3, 28, tzinfo=UTC)
METERS = pd.DataFrame(
    {
        "meter_id": ["MTR-1", "MTR-2", "MTR-3"],
        "segment": ["residential", "commercial", "residential"],
        "region": ["north", "north", "south"],
        "weather_station_id": ["WS-N", "WS-N", "WS-S"],
        "grid_node_id": ["GN-1", "GN-1", "GN-2"],
        "timezone": ["Europe/London", "Europe/London", "America/New_York"],
    }
)
TIMEZONES = dict(zip(METERS["meter_id"], METERS["timezone"], strict=True))
DST_DAY = date(2026, 3, 29)

# GN-1: one hour of 5-minute samples, two in a row beyond 100 mHz (49.78, 50.21 Hz); GN-2: 20-minute
# samples, one at 49.45 Hz beyond the statutory band; GN-3: 1-minute samples, 12 minutes at +130 mHz,
# then 5 at +260 mHz (docs/grid.md has the states these make).
GN1_FREQUENCIES = [50.0, 50.03, 49.94, 50.07, 49.78, 50.21, 50.01, 49.99, 50.06, 50.0, 49.9, 50.02]
GN2_FREQUENCIES = [50.0, 50.01, 49.45, 50.0, 50.02, 49.99]
GN3_FREQUENCIES = [50.0] * 10 + [50.13] * 12 + [50.26] * 5 + [50.0] * 13


@dataclass(frozen=True)
class OpsData:
    readings: pd.DataFrame
    ledger: pd.DataFrame
    quarantine: pd.DataFrame
    anomalies: pd.DataFrame
    grid: pd.DataFrame
    weather: pd.DataFrame
    vee: pd.DataFrame  # ops.vee_readings

    @property
    def billing(self) -> pd.DataFrame:
        """The intervals the consumption marts sum (VEE's actual, estimated and edited)."""
        return billing_series(self.vee)


def make_vee(readings: pd.DataFrame) -> pd.DataFrame:
    """VEE's output for the readings: kept as read, except on the DST day MTR-1's gaps are estimated
    (all but the last two, which stay missing), its first reading edited after a rejection and its
    second approved by a reviewer; MTR-2's first reading
    failed validation; MTR-3's gaps while it exports on DAY0 are estimated as export."""
    vee = all_actual_vee(readings, TIMEZONES)
    mtr1_dst = (vee["meter_id"] == "MTR-1") & (vee["local_date"] == DST_DAY)
    gaps = vee.index[mtr1_dst & (vee["status"] == "missing")]
    assert len(gaps) >= 4, "the data set should leave gaps on the DST day"
    estimated = vee.index.isin(gaps[:-2])
    vee = set_intervals(vee, estimated, status="estimated", method="linear_interpolation", energy_kwh=0.4)
    vee = set_intervals(vee, estimated, direction="import")
    read = vee.index[mtr1_dst & (vee["status"] == "actual")]
    # A reviewer rejected the first reading (VEE estimated it anew) and approved the second (kept as read).
    vee = set_intervals(
        vee,
        vee.index == read[0],
        status="edited",
        method="linear_interpolation+register_scaled",
        energy_kwh=0.9,
        edited_by="reviewer",
    )
    vee = set_intervals(
        vee, vee.index == read[1], status="edited", method="review_approved", edited_by="reviewer"
    )
    mtr2 = vee.index[(vee["meter_id"] == "MTR-2") & (vee["status"] == "actual")]
    vee = set_intervals(
        vee, vee.index == mtr2[0], status="failed", method="none", energy_kwh=None, reasons="spike"
    )
    start = pd.to_datetime(vee["reading_start"], utc=True)
    exporting = (
        (vee["meter_id"] == "MTR-3")
        & (vee["status"] == "missing")
        & start.dt.hour.between(15, 18)
        & (start.dt.date == DAY0.date())
    )
    assert exporting.any(), "the data set should leave a gap while MTR-3 exports"
    return set_intervals(
        vee, exporting, status="estimated", method="flat_fill", energy_kwh=-0.3, direction="export"
    )


def make_ops_data() -> OpsData:
    """Two UTC days of 15-minute readings with gaps; MTR-3 exports (negative kWh) around midday."""
    rng = np.random.default_rng(7)
    rows = []
    for meter in METERS["meter_id"]:
        for i in range(2 * 96):
            start = DAY0 + timedelta(minutes=15 * i)
            if rng.random() < 0.1:  # a gap
                continue
            kwh = round(float(rng.uniform(0.05, 1.5)), 4)
            exporting = meter == "MTR-3" and 15 <= start.hour <= 18
            rows.append(
                {
                    "meter_id": meter,
                    "reading_start": start,
                    "interval_minutes": 15,
                    "energy_kwh": -kwh if exporting else kwh,
                    "direction": "export" if exporting else "import",
                    "record_version": 1,
                    "batch_id": f"B-{start.date()}",
                }
            )
    readings = pd.DataFrame(rows)
    ledger = pd.DataFrame(
        {
            "batch_id": ["B-1", "B-2", "B-3", "B-4"],
            "source": ["meter_readings", "meter_readings", "grid_status", "meter_readings"],
            "records_in": [100, 50, 20, 80],
            "accepted": [97, 50, 18, 76],
            "flagged": [3, 0, 1, 2],
            "quarantined": [3, 0, 2, 4],
            # DAY0's meter batches differ in size: the day's score weighs them by records_in.
            "quality_score": [99.0, 90.0, 97.5, 88.0],
            "processed_at": [DAY0 + timedelta(hours=h) for h in (1, 5, 6, 30)],
        }
    )
    quarantine = pd.DataFrame(
        {
            "batch_id": ["B-1"] * 3 + ["B-3"] * 2 + ["B-4"] * 4,
            "record_index": [0, 1, 2, 0, 1, 0, 1, 2, 3],
            "source": ["meter_readings"] * 3 + ["grid_status"] * 2 + ["meter_readings"] * 4,
            "reasons": [
                # Free text after a code (a parser's detail, a reviewer's note) is not a reason of its own.
                "malformed:invalid_json (unexpected character at char 3)",
                "out_of_range,negative_import",
                "malformed:invalid_json (unexpected end of data at char 224)",
                "frequency_range",
                "schema, frequency_range",
                "review_rejected:CT ratio wrong; see ticket 12",
                "schema",
                "duplicate_conflict",
                "out_of_range,review_rejected:swapped meter",
            ],
            "quarantined_at": [DAY0 + timedelta(hours=1)] * 3
            + [DAY0 + timedelta(hours=6)] * 2
            + [DAY0 + timedelta(hours=30)] * 4,
        }
    )
    scored = readings.sample(n=120, random_state=3)
    anomalies = pd.DataFrame(
        {
            "meter_id": scored["meter_id"].to_numpy(),
            "reading_start": scored["reading_start"].to_numpy(),
            "score": rng.normal(0, 2, len(scored)),
            "scored_at": [DAY0 + timedelta(hours=2 + 24 * (i % 2)) for i in range(len(scored))],
        }
    )
    anomalies["is_anomaly"] = anomalies["score"].abs() > 3
    grid = pd.DataFrame(
        {
            "grid_node_id": ["GN-1"] * 12 + ["GN-2"] * 6 + ["GN-3"] * 40,
            "measured_at": [DAY0 + timedelta(minutes=5 * i) for i in range(12)]
            + [DAY0 + timedelta(minutes=20 * i) for i in range(6)]
            + [DAY0 + timedelta(hours=3, minutes=i) for i in range(40)],
            "frequency_hz": [*GN1_FREQUENCIES, *GN2_FREQUENCIES, *GN3_FREQUENCIES],
            "voltage_v": list(rng.uniform(220, 240, 18).round(2)) + [231.0] * 40,
            "load_mw": list(rng.uniform(10, 20, 18).round(2)) + [15.0] * 40,
        }
    )
    weather = pd.DataFrame(
        {
            "station_id": ["WS-N"] * 8 + ["WS-S"] * 8,
            "observed_at": [DAY0 + timedelta(hours=6 * i) for i in range(8)] * 2,
            "temperature_c": list(rng.uniform(2, 14, 8).round(1)) + list(rng.uniform(18, 30, 8).round(1)),
        }
    )
    return OpsData(readings, ledger, quarantine, anomalies, grid, weather, make_vee(readings))


def insert(conn: psycopg.Connection, table: str, frame: pd.DataFrame, extra: dict[str, object]) -> None:
    columns = [*frame.columns, *extra]
    placeholders = ", ".join(["%s"] * len(columns))
    rows = [
        (*(v.item() if isinstance(v, np.generic) else v for v in row), *extra.values())
        for row in frame.itertuples(index=False)
    ]
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO ops.{table} ({', '.join(columns)}) VALUES ({placeholders})", rows)


def enriched_subset(readings: pd.DataFrame) -> pd.DataFrame:
    """The readings the test marks as enriched (time-of-use known): MTR-1's first eight."""
    return readings[readings["meter_id"] == "MTR-1"].head(8)


def load(conn: psycopg.Connection, data: OpsData) -> None:
    # Not the migration record: a session that later re-checks migrations (after tests/storage's
    # forget_applied) would re-run them on existing tables.
    truncate_ops(conn)
    insert(conn, "meters", METERS, {})
    insert(conn, "meter_readings", data.readings, {})
    insert(conn, "ingest_ledger", data.ledger, {"origin": "landing", "origin_ref": "f", "raw_key": "k"})
    insert(conn, "quarantine", data.quarantine, {"payload": "{}"})
    insert(conn, "anomaly_scores", data.anomalies, {"model_version": "test-1"})
    insert(conn, "grid_status", data.grid, {"record_version": 1, "batch_id": "B-3"})
    grid_days = pd.to_datetime(data.grid["measured_at"], utc=True).dt.date
    run_grid_days(
        conn, grid_days.min(), grid_days.max(), GridConfig()
    )  # what the grid_stability asset writes
    insert(
        conn,
        "weather_observations",
        data.weather,
        {
            "humidity_pct": 80.0,
            "pressure_hpa": 1010.0,
            "wind_speed_ms": 3.0,
            "precipitation_mm": 0.0,
            "record_version": 1,
            "batch_id": "W-1",
        },
    )
    enriched = enriched_subset(data.readings)
    insert(
        conn,
        "enriched_meter_readings",
        enriched[["meter_id", "reading_start", "interval_minutes", "energy_kwh", "direction"]],
        {"tou_period": "off_peak", "local_date": date(2026, 3, 28), "local_hour": 0},
    )
    insert_vee(conn, data.vee, TIMEZONES)
    conn.commit()


@dataclass(frozen=True)
class Build:
    data: OpsData
    results: list[dict[str, Any]]
    conn: psycopg.Connection
    url: str
    target: Path

    def mart(self, sql: str) -> pd.DataFrame:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            assert cur.description is not None
            return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def run_dbt_build(url: str, target: Path, *flags: str) -> list[dict[str, Any]]:
    """`dbt build` in a subprocess against `url`; returns run_results.json's results."""
    return dbt_build(
        {**os.environ, **dbt_env_from_url(url), "METRIFY_DBT_TARGET": "postgres"}, target, *flags
    )


def dbt_build(env: dict[str, str], target: Path, *flags: str) -> list[dict[str, Any]]:
    """`dbt build` in a subprocess with `env` (which names the target); returns run_results.json's results."""
    project = str(DBT_PROJECT_DIR)
    proc = subprocess.run(
        [
            dbt_executable(),
            "build",
            "--project-dir",
            project,
            "--profiles-dir",
            project,
            "--target-path",
            str(target),
            "--log-path",
            str(target),
            *flags,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    results: list[dict[str, Any]] = json.loads((target / "run_results.json").read_text())["results"]
    return results


def failures(results: list[dict[str, Any]]) -> dict[str, str]:
    """Nodes that did not succeed (models) or pass (tests)."""
    return {r["unique_id"]: r["status"] for r in results if r["status"] not in ("success", "pass")}


def build_marts(pg_resource: PostgresResource, target: Path, marts: Iterable[str]) -> None:
    """The data set loaded and `marts` built from scratch with their parents (models, seeds and
    snapshots; dbt's data tests are this module's business)."""
    with pg_resource.connect(autocommit=True) as conn:
        load(conn, make_ops_data())
    results = run_dbt_build(
        pg_resource.get_url(),
        target,
        "--full-refresh",
        "--exclude-resource-type",
        "test",
        "--select",
        *(f"+{mart}" for mart in marts),
    )
    assert not failures(results)


@pytest.fixture(scope="module")
def build(pg_resource: PostgresResource, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Build]:
    """Load the data set and build from scratch (other tests may have left incremental marts). A full
    refresh does not rebuild a snapshot: another file's build on this worker's database left its
    meters' history in snp_ops__meters (a second dim_meter version of MTR-1 or MTR-3), so it goes."""
    data = make_ops_data()
    target = tmp_path_factory.mktemp("dbt_target")
    with pg_resource.connect(autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS snapshots.snp_ops__meters")
        load(conn, data)
        results = run_dbt_build(pg_resource.get_url(), target, "--full-refresh")
        yield Build(data, results, conn, pg_resource.get_url(), target)


def local_frame(readings: pd.DataFrame) -> pd.DataFrame:
    """Readings with local date (pandas tz conversion), import/export split and UTC hour."""
    frame = readings.merge(METERS[["meter_id", "timezone"]], on="meter_id")
    start = pd.to_datetime(frame["reading_start"], utc=True)
    frame["local_date"] = [ts.tz_convert(tz).date() for ts, tz in zip(start, frame["timezone"], strict=True)]
    frame["hour_start_utc"] = start.dt.floor("h").dt.tz_localize(None)
    export = frame["direction"] == "export"
    frame["kwh_import"] = frame["energy_kwh"].abs().where(~export, 0.0)
    frame["kwh_export"] = frame["energy_kwh"].abs().where(export, 0.0)
    return frame


def test_build_succeeds_with_every_test_passing(build: Build) -> None:
    statuses = {r["unique_id"]: r["status"] for r in build.results}
    tests = {k: v for k, v in statuses.items() if k.startswith("test.")}
    models = {k: v for k, v in statuses.items() if k.startswith("model.")}
    assert len(models) >= 19 and set(models.values()) == {"success"}
    assert len(tests) >= 60
    assert failures(build.results) == {}


def test_daily_consumption_matches_pandas(build: Build) -> None:
    frame = local_frame(build.data.billing)
    expected = (
        frame.groupby(["meter_id", "local_date"])
        .agg(
            kwh_import=("kwh_import", "sum"),
            kwh_export=("kwh_export", "sum"),
            interval_count=("kwh_import", "size"),
        )
        .reset_index()
    )
    tz = TIMEZONES
    expected["expected_intervals"] = [
        int(
            (pd.Timestamp(d + timedelta(days=1)).tz_localize(tz[m]) - pd.Timestamp(d).tz_localize(tz[m]))
            / pd.Timedelta(minutes=15)
        )
        for m, d in zip(expected["meter_id"], expected["local_date"], strict=True)
    ]
    actual = build.mart("SELECT * FROM marts.fct_consumption_daily ORDER BY meter_id, local_date")
    merged = expected.merge(actual, on=["meter_id", "local_date"], suffixes=("", "_db"), how="outer")
    assert len(merged) == len(expected) == len(actual)
    for col in ("kwh_import", "kwh_export"):
        np.testing.assert_allclose(merged[f"{col}_db"].astype(float), merged[col], rtol=1e-9)
    assert (merged["interval_count_db"] == merged["interval_count"]).all()
    assert (merged["expected_intervals_db"] == merged["expected_intervals"]).all()
    # The DST day in London has 92 intervals, not 96.
    dst = merged[(merged["meter_id"] == "MTR-1") & (merged["local_date"] == DST_DAY)]
    assert dst["expected_intervals_db"].item() == 92
    np.testing.assert_allclose(
        merged["completeness"].astype(float), merged["interval_count"] / merged["expected_intervals"]
    )
    assert (merged.loc[merged["meter_id"] != "MTR-3", "kwh_export_db"] == 0).all()
    assert (merged.loc[merged["meter_id"] == "MTR-3", "kwh_export_db"] > 0).any()


def decimal_total(values: pd.Series) -> float:
    """The exact sum of floats as written (shortest repr), as a float: what no ordering changes."""
    return float(sum((Decimal(repr(float(v))) for v in values), Decimal(0)))


def test_energy_sums_do_not_depend_on_the_order_rows_are_added_in(build: Build) -> None:
    """A float sum changes with the order of its terms, and PostgreSQL adds in scan order, which an
    incremental rebuild changes: a day's kWh read 69.10920000000002 after one build and ...03 after
    the next. The marts add energies as decimals (`exact_sum`): each day, hour and region-day is
    the float nearest the exact sum, whatever the order, and net is import - export exactly."""
    frame = local_frame(build.data.billing)
    daily = build.mart("SELECT meter_id, local_date, kwh_import, net_kwh FROM marts.fct_consumption_daily")
    hourly = build.mart("SELECT meter_id, hour_start_utc, kwh_import FROM marts.fct_consumption_hourly")
    region = build.mart(
        "SELECT region, segment, local_date, kwh_import FROM marts.fct_consumption_daily_by_region"
    )
    checked = order_sensitive = 0
    for (meter, day), rows in frame.groupby(["meter_id", "local_date"]):
        row = daily[(daily["meter_id"] == meter) & (daily["local_date"] == day)]
        exact = decimal_total(rows["kwh_import"])
        assert row["kwh_import"].item() == exact, (meter, day)
        export = decimal_total(rows["kwh_export"])
        assert row["net_kwh"].item() == float(Decimal(repr(exact)) - Decimal(repr(export))), (meter, day)
        forward, backward = rows["kwh_import"].sum(), rows["kwh_import"][::-1].sum()
        order_sensitive += float(sum(rows["kwh_import"].tolist())) != exact or forward != backward
        checked += 1
    for (meter, hour), rows in frame.groupby(["meter_id", "hour_start_utc"]):
        row = hourly[(hourly["meter_id"] == meter) & (hourly["hour_start_utc"] == hour)]
        assert row["kwh_import"].item() == decimal_total(rows["kwh_import"]), (meter, hour)
    by_region = daily.merge(METERS[["meter_id", "region", "segment"]], on="meter_id")
    for (name, segment, day), rows in by_region.groupby(["region", "segment", "local_date"]):
        row = region[
            (region["region"] == name) & (region["segment"] == segment) & (region["local_date"] == day)
        ]
        assert row["kwh_import"].item() == decimal_total(rows["kwh_import"]), (name, segment, day)
    # The data set has days whose float sum depends on its order: the check above could fail.
    assert checked >= 9
    assert order_sensitive > 0


def test_daily_consumption_carries_the_vee_split_and_gate(build: Build) -> None:
    days = vee_days(build.data.vee, TIMEZONES)
    actual = build.mart("SELECT * FROM marts.fct_consumption_daily")
    merged = days.merge(actual, on=["meter_id", "local_date"], suffixes=("_vee", ""), how="outer")
    assert len(merged) == len(days) == len(actual)
    for column in (
        "expected_intervals",
        *(f"{s}_intervals" for s in ("actual", "estimated", "edited", "missing", "failed")),
    ):
        assert (merged[column] == merged[f"{column}_vee"]).all(), column
    assert (merged["billing_ready"] == merged["billing_ready_vee"]).all()
    assert (merged["gate_failures"] == merged["gate_failures_vee"]).all()
    np.testing.assert_allclose(merged["kwh_actual"].astype(float), merged["actual_kwh"], atol=1e-9)
    np.testing.assert_allclose(merged["kwh_estimated"].astype(float), merged["estimated_kwh"], atol=1e-9)
    np.testing.assert_allclose(
        (merged["kwh_actual"] + merged["kwh_estimated"]).astype(float),
        merged["net_kwh"].astype(float),
        atol=1e-9,
    )
    assert (
        merged["actual_intervals"] + merged["estimated_intervals"] + merged["edited_intervals"]
        == merged["interval_count"]
    ).all()

    by_day = merged.set_index(["meter_id", "local_date"])
    # MTR-1's DST day: 92 intervals; gaps estimated but two, two edits: billing ready, 90 of 92 valued.
    dst = by_day.loc[("MTR-1", DST_DAY)]
    assert dst["expected_intervals"] == 92
    assert (dst["edited_intervals"], dst["missing_intervals"], dst["failed_intervals"]) == (2, 2, 0)
    assert dst["estimated_intervals"] >= 2
    assert dst["billing_ready"] and dst["gate_failures"] == ""
    assert float(dst["completeness"]) == pytest.approx(90 / 92)
    # The rejected reading's 0.9 kWh is estimated energy; the approved one's stays as read.
    assert float(dst["kwh_estimated"]) == pytest.approx(0.4 * dst["estimated_intervals"] + 0.9)
    # MTR-3's gaps while exporting were estimated as export: negative net estimated energy.
    assert float(by_day.loc[("MTR-3", DAY0.date()), "kwh_estimated"]) < 0
    # MTR-2's failed reading has no billing value and counts as failed.
    assert by_day.loc[("MTR-2", DAY0.date()), "failed_intervals"] == 1
    # Days left with gaps (random 10% of the readings) fail the gate.
    gappy = merged["missing_intervals"] + merged["failed_intervals"] > 0.05 * merged["expected_intervals"]
    assert gappy.any() and not merged.loc[gappy, "billing_ready"].any()
    assert (merged.loc[gappy, "gate_failures"] != "").all()


def test_hourly_counts_energy_estimated_after_a_rejection_as_the_daily_does(build: Build) -> None:
    """An hour holding an interval VEE estimated after a reviewer's rejection counts it estimated and
    its energy in kwh_estimated, as the daily fact does; per meter-day the hours add up to the day."""
    vee = build.data.vee
    rejected = vee[(vee["status"] == "edited") & (vee["method"] != "review_approved")]
    approved = vee[(vee["status"] == "edited") & (vee["method"] == "review_approved")]
    assert len(rejected) == len(approved) == 1
    hours = build.mart(
        "SELECT meter_id, hour_start_utc, estimated_intervals, kwh_estimated FROM marts.fct_consumption_hourly"
    )
    hours["hour_start_utc"] = pd.to_datetime(hours["hour_start_utc"])
    hours = hours.set_index(["meter_id", "hour_start_utc"])
    in_vee = vee.assign(
        hour_start_utc=pd.to_datetime(vee["reading_start"], utc=True).dt.floor("h").dt.tz_localize(None),
        net=net_kwh(vee),
    )
    expected = (
        in_vee[estimated_energy(vee)]
        .groupby(["meter_id", "hour_start_utc"])
        .agg(n=("net", "size"), kwh=("net", "sum"))
    )
    rejected_hour = (rejected["meter_id"].iloc[0], in_vee.loc[rejected.index[0], "hour_start_utc"])
    assert rejected_hour in expected.index and expected.loc[rejected_hour, "n"] >= 1
    assert hours.loc[rejected_hour, "estimated_intervals"] == expected.loc[rejected_hour, "n"]
    assert float(hours.loc[rejected_hour, "kwh_estimated"]) == pytest.approx(
        expected.loc[rejected_hour, "kwh"]
    )
    # Every hour: the intervals whose energy is estimated, no other.
    counted = hours["estimated_intervals"].reindex(expected.index)
    assert (counted == expected["n"]).all()
    assert int(hours["estimated_intervals"].sum()) == int(expected["n"].sum())

    daily = build.mart(
        "SELECT meter_id, local_date, kwh_estimated, estimated_intervals, edited_intervals "
        "FROM marts.fct_consumption_daily"
    ).set_index(["meter_id", "local_date"])
    summed = build.mart(
        "SELECT meter_id, local_date, sum(kwh_estimated) AS kwh, sum(estimated_intervals) AS n "
        "FROM marts.fct_consumption_hourly GROUP BY meter_id, local_date"
    ).set_index(["meter_id", "local_date"])
    np.testing.assert_allclose(
        summed["kwh"].astype(float), daily.loc[summed.index, "kwh_estimated"].astype(float), atol=1e-9
    )
    # The daily counts by status: the rejected edit is an edited interval there, estimated energy here.
    day = (rejected["meter_id"].iloc[0], rejected["local_date"].iloc[0])
    assert int(summed.loc[day, "n"]) == int(daily.loc[day, "estimated_intervals"]) + 1


def test_hourly_consumption_matches_pandas(build: Build) -> None:
    frame = local_frame(build.data.billing)
    expected = (
        frame.groupby(["meter_id", "hour_start_utc"])
        .agg(
            kwh_import=("kwh_import", "sum"),
            kwh_export=("kwh_export", "sum"),
            interval_count=("kwh_import", "size"),
        )
        .reset_index()
    )
    actual = build.mart("SELECT * FROM marts.fct_consumption_hourly")
    actual["hour_start_utc"] = pd.to_datetime(actual["hour_start_utc"])
    merged = expected.merge(actual, on=["meter_id", "hour_start_utc"], suffixes=("", "_db"))
    assert len(merged) == len(expected) == len(actual)
    np.testing.assert_allclose(merged["kwh_import_db"].astype(float), merged["kwh_import"], rtol=1e-9)
    np.testing.assert_allclose(
        merged["net_kwh"].astype(float), merged["kwh_import"] - merged["kwh_export"], atol=1e-9
    )
    assert (merged["interval_count_db"] == merged["interval_count"]).all()
    regions = dict(zip(METERS["meter_id"], METERS["region"], strict=True))
    assert (merged["region"] == merged["meter_id"].map(regions)).all()
    tou = actual.loc[actual["tou_period"].notna()]
    enriched = local_frame(enriched_subset(build.data.readings))
    assert set(zip(tou["meter_id"], tou["hour_start_utc"], strict=True)) == set(
        zip(enriched["meter_id"], enriched["hour_start_utc"], strict=True)
    )


def test_data_quality_matches_pandas(build: Build) -> None:
    ledger = build.data.ledger.assign(activity_date=lambda f: f["processed_at"].dt.date)
    expected = ledger.groupby(["activity_date", "source"])[["records_in", "accepted", "quarantined"]].sum()
    quarantine = build.data.quarantine.assign(activity_date=lambda f: f["quarantined_at"].dt.date)
    reasons = quarantine.assign(reason=quarantine["reasons"].str.split(",")).explode("reason")
    reasons["reason"] = reasons["reason"].map(reason_code)  # without a note or a parser's detail
    anomalies = build.data.anomalies.assign(activity_date=lambda f: f["scored_at"].dt.date)
    rate = anomalies.groupby("activity_date")["is_anomaly"].mean()

    actual = build.mart("SELECT * FROM marts.fct_data_quality_daily").set_index(["activity_date", "source"])
    assert set(actual.index) == set(expected.index) | {(d, "meter_readings") for d in rate.index}
    for key, row in expected.iterrows():
        assert actual.loc[key, ["records_in", "accepted", "quarantined"]].tolist() == row.tolist()
    for key, count in quarantine.groupby(["activity_date", "source"]).size().items():
        assert actual.loc[key, "quarantine_records"] == count
    for key, group in reasons.groupby(["activity_date", "source"]):
        assert actual.loc[key, "distinct_quarantine_reasons"] == group["reason"].nunique()
    for day, value in rate.items():
        assert float(actual.loc[(day, "meter_readings"), "anomaly_rate"]) == pytest.approx(value)
    # Each batch's score weighted by its records: DAY0's meter batches of 100 and 50 records scored
    # 99 and 90 give 96, not their plain mean 94.5 (a small batch must not drag the day down).
    weighted = (
        ledger.assign(points=ledger["quality_score"] * ledger["records_in"])
        .groupby(["activity_date", "source"])[["points", "records_in"]]
        .sum()
    )
    for key, row in weighted.iterrows():
        assert float(actual.loc[key, "avg_quality_score"]) == pytest.approx(row["points"] / row["records_in"])
    assert float(actual.loc[(DAY0.date(), "meter_readings"), "avg_quality_score"]) == pytest.approx(96.0)

    by_reason = build.mart("SELECT * FROM marts.fct_quarantine_reasons_daily")
    got = by_reason.set_index(["activity_date", "source", "reason"])["record_count"].to_dict()
    assert got == reasons.groupby(["activity_date", "source", "reason"]).size().to_dict()


def test_grid_stability_matches_pandas(build: Build) -> None:
    grid = build.data.grid.assign(
        dev=lambda f: f["frequency_hz"] - 50.0,
        hour_start_utc=lambda f: (
            pd.to_datetime(f["measured_at"], utc=True).dt.floor("h").dt.tz_localize(None)
        ),
    )
    actual = build.mart("SELECT * FROM marts.fct_grid_stability")
    actual["hour_start_utc"] = pd.to_datetime(actual["hour_start_utc"])
    actual = actual.set_index(["grid_node_id", "hour_start_utc"])
    groups = grid.groupby(["grid_node_id", "hour_start_utc"])
    assert len(actual) == groups.ngroups == 4
    for key, group in groups:
        row = actual.loc[key]
        assert row["sample_count"] == len(group)
        # Hz to 6 decimals (macros/math.sql `unit_places`)
        assert float(row["std_deviation_hz"]) == pytest.approx(group["dev"].std(ddof=0), abs=5e-7)
        assert float(row["share_beyond_50mhz"]) == pytest.approx((group["dev"].abs() > 0.05).mean())
        assert float(row["share_beyond_200mhz"]) == pytest.approx((group["dev"].abs() > 0.2).mean())
        assert float(row["min_voltage_v"]) == pytest.approx(group["voltage_v"].min())
        assert float(row["max_voltage_v"]) == pytest.approx(group["voltage_v"].max())
    # The new figures and system_state come from ops.grid_stability, hour by hour.
    ops = build.mart("SELECT * FROM ops.grid_stability")
    ops["hour_start_utc"] = pd.to_datetime(ops["hour_start"], utc=True).dt.tz_localize(None)
    ops = ops.set_index(["grid_node_id", "hour_start_utc"]).loc[actual.index]
    assert (actual["system_state"] == ops["worst_state"]).all()
    for column in ("risk_score", "minutes_outside_standard", "rocof_max_hz_s", "voltage_within_share"):
        np.testing.assert_allclose(
            actual[column].astype(float), ops[column].astype(float), atol=5e-7, err_msg=column
        )
    assert set(actual["risk_components"]) == {"frequency,voltage"}  # no capacity: no load margin
    # ENTSO-E states with their durations, no longer the band of the hour's largest sample:
    states = actual["system_state"].groupby(level="grid_node_id").agg(set)
    assert states["GN-1"] == {"alert"}  # two 5-minute samples beyond 100 mHz: more than 5 minutes
    assert states["GN-2"] == {"alert", "normal"}  # 49.45 Hz for one 20-minute sample: no steady state
    assert states["GN-3"] == {"emergency"}
    events = build.mart("SELECT * FROM marts.fct_grid_state_events WHERE grid_node_id = 'GN-3'")
    events = events.sort_values("started_at_utc")
    assert events[["state", "rule", "duration_minutes"]].values.tolist() == [
        ["alert", "beyond_half_max_steady_state", 8.0],  # 03:15 (beyond 100 mHz since 03:10) .. 03:23
        [
            "emergency",
            "steady_state_beyond_max",
            5.0,
        ],  # 2 of the last 3 samples beyond 200 mHz: 03:23 .. 03:28
    ]
    assert not events["is_open"].any()


def test_weather_impact_degree_days(build: Build) -> None:
    """Per region, segment and day: north's residential and commercial meters are rows of their own,
    each with the region's weather."""
    actual = build.mart("SELECT * FROM marts.fct_weather_impact").set_index(
        ["region", "segment", "local_date"]
    )
    assert set(actual.index.droplevel("local_date")) == {
        ("north", "residential"),
        ("north", "commercial"),
        ("south", "residential"),
    }
    weather = build.data.weather.merge(
        METERS.drop_duplicates("weather_station_id")[["weather_station_id", "region", "timezone"]],
        left_on="station_id",
        right_on="weather_station_id",
    )
    weather["local_date"] = [
        ts.tz_convert(tz).date()
        for ts, tz in zip(pd.to_datetime(weather["observed_at"], utc=True), weather["timezone"], strict=True)
    ]
    mean_temp = weather.groupby(["region", "local_date"])["temperature_c"].mean()
    compared = [
        (region, segment, day) for region, segment, day in actual.index if (region, day) in mean_temp.index
    ]
    assert len(compared) >= 6
    for region, segment, day in compared:
        temp, row = mean_temp[(region, day)], actual.loc[(region, segment, day)]
        # degrees to 4 decimals (macros/math.sql `unit_places`)
        assert float(row["mean_temperature_c"]) == pytest.approx(temp, abs=5e-5)
        assert float(row["heating_degree_days"]) == pytest.approx(max(15.5 - temp, 0), abs=5e-5)
        assert float(row["cooling_degree_days"]) == pytest.approx(max(temp - 22.0, 0), abs=5e-5)
    daily = local_frame(build.data.billing).merge(METERS[["meter_id", "region", "segment"]], on="meter_id")
    by_series = daily.groupby(["region", "segment", "local_date"])
    kwh, meters = by_series["kwh_import"].sum(), by_series["meter_id"].nunique()
    np.testing.assert_allclose(actual.loc[kwh.index, "kwh_import"].astype(float), kwh.to_numpy())
    np.testing.assert_allclose(  # kWh to 6 decimals
        actual.loc[kwh.index, "kwh_import_per_meter"].astype(float), (kwh / meters).to_numpy(), atol=5e-7
    )


# The decimals the grid marts serve per column (macros/math.sql `unit_places`; docs/warehouse.md):
# Hz 6, Hz/s 8, V and MW 3, minutes 4, seconds 3, risk scores 6; shares as computed.
GRID_PLACES = {
    "mean_frequency_hz": 6,
    "std_deviation_hz": 6,
    "max_abs_deviation_hz": 6,
    "min_voltage_v": 3,
    "max_voltage_v": 3,
    "mean_load_mw": 3,
    "mean_deviation_hz": 6,
    "max_abs_steady_state_hz": 6,
    "standard_range_hz": 6,
    "minutes_outside_standard": 4,
    "covered_minutes": 4,
    "rocof_max_hz_s": 8,
    "rocof_window_s": 3,
    "mean_voltage_v": 3,
    "max_load_mw": 3,
    "capacity_mw": 3,
    "min_load_margin_mw": 3,
    "alert_minutes": 4,
    "emergency_minutes": 4,
    "risk_score": 6,
    "risk_frequency": 6,
    "risk_voltage": 6,
    "risk_load": 6,
}


def places(value: float) -> int:
    """Decimals of the shortest form of a double (what the API writes): 50.0123 has 4."""
    return max(0, -int(Decimal(repr(float(value))).as_tuple().exponent))


def test_grid_figures_are_served_to_the_decimals_of_their_unit(build: Build) -> None:
    """A trial read mean_frequency_hz 49.991453333333325, max_abs_deviation_hz 0.052599999999998204 and
    peak_deviation_hz -0.38009999999999877 on /v1/grid/...: the binary noise of a mean or of
    frequency - 50. The marts serve each figure to its unit's decimals, within half its last place of
    the value computed in doubles (pandas over the samples, or the grid asset's row in `ops`)."""
    mart = build.mart("SELECT * FROM marts.fct_grid_stability")
    mart["hour_start_utc"] = pd.to_datetime(mart["hour_start_utc"])
    mart = mart.set_index(["grid_node_id", "hour_start_utc"])
    checked = 0
    for column, n in GRID_PLACES.items():  # no capacity in this data set: no load margin or risk
        values = mart[column].dropna().astype(float)
        assert all(places(v) <= n for v in values), (column, values.tolist())
        checked += len(values)
    assert checked >= 60
    grid = build.data.grid.assign(
        dev=lambda f: f["frequency_hz"] - 50.0,
        hour_start_utc=lambda f: (
            pd.to_datetime(f["measured_at"], utc=True).dt.floor("h").dt.tz_localize(None)
        ),
    )
    groups = grid.groupby(["grid_node_id", "hour_start_utc"])
    expected = pd.DataFrame(
        {
            "mean_frequency_hz": groups["frequency_hz"].mean(),
            "std_deviation_hz": groups["dev"].std(ddof=0),
            "max_abs_deviation_hz": groups["dev"].agg(lambda d: d.abs().max()),
            "mean_load_mw": groups["load_mw"].mean(),
        }
    )
    ops = build.mart("SELECT * FROM ops.grid_stability")
    ops["hour_start_utc"] = pd.to_datetime(ops["hour_start"], utc=True).dt.tz_localize(None)
    ops = ops.set_index(["grid_node_id", "hour_start_utc"]).loc[mart.index]
    from_ops = [c for c in GRID_PLACES if c in ops.columns and c not in expected.columns]
    expected = expected.loc[mart.index].join(ops[from_ops].astype(float))
    noisy = 0
    for column in expected.columns:
        want, got = expected[column].astype(float), mart[column].astype(float)
        known = want.notna()
        assert (got[known].notna()).all() and got[~known].isna().all(), column
        half = 0.5 * 10.0 ** -GRID_PLACES[column] * (1 + 1e-9)
        np.testing.assert_allclose(got[known], want[known], rtol=1e-12, atol=half, err_msg=column)
        noisy += sum(places(v) > GRID_PLACES[column] for v in want[known])
    assert noisy >= 10  # the doubles carry more places than that: the test fails without the rounding
    events = build.mart(
        "SELECT grid_node_id, started_at_utc, peak_deviation_hz, duration_minutes FROM marts.fct_grid_state_events"
    )
    raw = build.mart("SELECT grid_node_id, started_at, peak_deviation_hz FROM ops.grid_state_events")
    assert len(events) == len(raw) > 0
    assert all(places(v) <= 6 for v in events["peak_deviation_hz"])
    assert all(places(v) <= 4 for v in events["duration_minutes"].dropna())
    np.testing.assert_allclose(
        sorted(events["peak_deviation_hz"].astype(float)),
        sorted(raw["peak_deviation_hz"].astype(float)),
        atol=5e-7,
    )


def test_weather_impact_is_served_to_the_decimals_of_its_units(build: Build) -> None:
    """Temperatures and degree-days to 4 decimals, kWh per meter to 6 (docs/warehouse.md); HDD and CDD
    are the bases minus the mean as served, to the last digit."""
    impact = build.mart("SELECT * FROM marts.fct_weather_impact")
    for column, n in (
        ("kwh_import_per_meter", 6),
        ("mean_temperature_c", 4),
        ("min_temperature_c", 4),
        ("max_temperature_c", 4),
        ("heating_degree_days", 4),
        ("cooling_degree_days", 4),
    ):
        values = impact[column].dropna().astype(float)
        assert len(values) and max(places(v) for v in values) <= n, (column, values.tolist())
    weathered = impact.dropna(subset=["mean_temperature_c"])
    assert len(weathered) >= 6
    for temp, hdd, cdd in weathered[
        ["mean_temperature_c", "heating_degree_days", "cooling_degree_days"]
    ].itertuples(index=False):
        mean = Decimal(repr(float(temp)))
        assert Decimal(repr(float(hdd))) == max(Decimal("15.5") - mean, Decimal(0))
        assert Decimal(repr(float(cdd))) == max(mean - Decimal("22.0"), Decimal(0))


def expected_peak_demand(readings: pd.DataFrame) -> pd.DataFrame:
    """Per meter and local day: max imported kWh * 60 / minutes, and the earliest interval with it."""
    frame = local_frame(readings)
    frame["demand_kw"] = frame["kwh_import"] * 60 / frame["interval_minutes"]
    frame["reading_start_utc"] = pd.to_datetime(frame["reading_start"], utc=True).dt.tz_localize(None)
    frame = frame.sort_values(["demand_kw", "reading_start_utc"], ascending=[False, True])
    columns = ["meter_id", "local_date", "demand_kw", "reading_start_utc"]
    if "status" in frame:
        columns.append("status")
    return frame.groupby(["meter_id", "local_date"]).head(1)[columns]


def test_peak_demand_matches_pandas(build: Build) -> None:
    expected = expected_peak_demand(build.data.billing)
    actual = build.mart("SELECT * FROM marts.fct_peak_demand")
    merged = expected.merge(actual, on=["meter_id", "local_date"])
    assert len(merged) == len(expected) == len(actual)
    np.testing.assert_allclose(merged["peak_demand_kw"].astype(float), merged["demand_kw"], rtol=1e-9)
    assert (pd.to_datetime(merged["peak_interval_start_utc"]) == merged["reading_start_utc"]).all()
    assert (merged["peak_interval_status"] == merged["status"]).all()


def test_peak_demand_is_the_kw_to_6_decimals_and_rollups_sum_the_days(build: Build) -> None:
    """The API served `peak_demand_kw` 4.429999999999999 (1.1075 kWh in a quarter-hour: 1.1075 * 60.0 /
    15 in doubles): the mart rounds a peak to 6 decimals, the places VEE's series carries, so each is
    the double nearest a 6-decimal number (its shortest form has at most 6 decimals; the API test
    checks one that was noisy). The region-day rollup still sums the meters' days exactly."""
    peaks = build.mart("SELECT peak_demand_kw FROM marts.fct_peak_demand")["peak_demand_kw"].astype(float)
    noisy = expected_peak_demand(build.data.billing)["demand_kw"]
    assert len(peaks) and (peaks.round(6) == peaks).all()
    assert all(len(repr(v).partition(".")[2]) <= 6 for v in peaks)
    np.testing.assert_allclose(peaks.sort_values(), noisy.sort_values(), atol=5e-7)
    days = build.mart(
        "SELECT region, segment, local_date, net_kwh, kwh_import FROM marts.fct_consumption_daily"
    )
    regions = build.mart("SELECT * FROM marts.fct_consumption_daily_by_region")
    for (region, segment, day), group in days.groupby(["region", "segment", "local_date"]):
        (row,) = regions[
            (regions["region"] == region) & (regions["segment"] == segment) & (regions["local_date"] == day)
        ].itertuples()
        for column in ("net_kwh", "kwh_import"):
            exact = sum(Decimal(repr(float(v))) for v in group[column])
            assert round(Decimal(repr(float(getattr(row, column)))), 6) == round(exact, 6), (region, day)


def test_region_segment_rollup_matches_pandas(build: Build) -> None:
    frame = local_frame(build.data.billing).merge(METERS[["meter_id", "region", "segment"]], on="meter_id")
    expected = frame.groupby(["region", "segment", "local_date"]).agg(
        kwh=("kwh_import", "sum"), meters=("meter_id", "nunique")
    )
    actual = build.mart("SELECT * FROM marts.fct_consumption_daily_by_region").set_index(
        ["region", "segment", "local_date"]
    )
    assert set(actual.index) == set(expected.index)
    np.testing.assert_allclose(
        actual.loc[expected.index, "kwh_import"].astype(float), expected["kwh"].to_numpy(), rtol=1e-9
    )
    assert (actual.loc[expected.index, "meter_count"].to_numpy() == expected["meters"].to_numpy()).all()


def test_time_dimension_agrees_with_enrichment_rules(build: Build) -> None:
    actual = build.mart("SELECT day_type, local_hour, tou_period FROM marts.dim_time")
    assert len(actual) == 48
    for row in actual.itertuples():
        assert row.tou_period == tou_period(row.local_hour, row.day_type == "weekend")
    days = build.mart("SELECT date_day, day_type FROM marts.dim_date WHERE date_day = '2026-03-28'")
    assert days["day_type"].tolist() == ["weekend"]  # a Saturday


GRID_MARTS = ("--select", "fct_grid_stability", "fct_grid_state_events")
# What dbt writes to its debug log when it parses a project in full, and when it parses nothing.
FULL_PARSE, NO_PARSE = "Unable to do partial parsing", "no changes found, skipping parsing"


def gn4_samples(start: datetime, frequencies: list[float]) -> pd.DataFrame:
    """GN-4: 1-minute samples from `start`."""
    n = len(frequencies)
    return pd.DataFrame(
        {
            "grid_node_id": ["GN-4"] * n,
            "measured_at": [start + timedelta(minutes=i) for i in range(n)],
            "frequency_hz": frequencies,
            "voltage_v": [231.0] * n,
            "load_mw": [15.0] * n,
        }
    )


def test_partitioned_run_rebuilds_its_grid_days_and_the_events_they_changed(build: Build) -> None:
    """Runs before the incremental rebuild: a run over one UTC day rebuilds that day's node-hours and
    events, no other day's, takes the end an event of the day before got from it, and drops an event a
    re-run of the day no longer finds. Each run names its day as Dagster's do, in the environment, and
    parses nothing: the parse state of the build before holds, whichever day it built."""
    day0, day1 = DAY0.date(), DAY0.date() + timedelta(days=1)
    midnight = DAY0 + timedelta(days=1)
    log = build.target / "dbt.log"

    def partition(day: date) -> None:
        before = log.read_text()
        env = {**os.environ, **dbt_env_from_url(build.url), "METRIFY_DBT_TARGET": "postgres"}
        assert failures(dbt_build({**env, **partition_env((day, day))}, build.target, *GRID_MARTS)) == {}
        after = log.read_text()
        assert after.count(FULL_PARSE) == before.count(FULL_PARSE)
        assert after.count(NO_PARSE) == before.count(NO_PARSE) + 1

    def gn4_events() -> list[tuple[Any, ...]]:
        frame = build.mart(
            "SELECT started_at_utc, ended_at_utc, is_open FROM marts.fct_grid_state_events "
            "WHERE grid_node_id = 'GN-4' ORDER BY started_at_utc"
        )
        return [(a, None if pd.isna(b) else b, o) for a, b, o in frame.itertuples(index=False)]

    # DAY0 from 23:00: +120 mHz from 23:50, an alert from 23:55 still open when DAY0 runs.
    insert(build.conn, "grid_status", gn4_samples(midnight - timedelta(hours=1), [50.0] * 50 + [50.12] * 10), {"record_version": 1, "batch_id": "B-4"})  # fmt: skip
    run_grid_days(build.conn, day0, day0, GridConfig())
    partition(day0)
    naive = midnight.replace(tzinfo=None)
    assert gn4_events() == [(naive - timedelta(minutes=5), None, True)]

    # The next day: +120 mHz until 00:20, then again from 00:40 to 00:50 (an alert from 00:45).
    morning = [50.12] * 20 + [50.0] * 20 + [50.12] * 10 + [50.0] * 70
    insert(
        build.conn, "grid_status", gn4_samples(midnight, morning), {"record_version": 1, "batch_id": "B-5"}
    )
    run_grid_days(build.conn, day1, day1, GridConfig())
    with build.conn.cursor() as cur:  # marks DAY0's node-hours: a run over day1 must not rebuild them
        cur.execute(
            "UPDATE marts.fct_grid_stability SET mean_load_mw = -1 WHERE hour_start_utc < %s", (naive,)
        )
        marked = cur.rowcount
    partition(day1)
    assert gn4_events() == [
        (naive - timedelta(minutes=5), naive + timedelta(minutes=20), False),
        (naive + timedelta(minutes=45), naive + timedelta(minutes=50), False),
    ]
    hours = build.mart("SELECT hour_start_utc, sample_count, mean_load_mw FROM marts.fct_grid_stability")
    earlier = hours[pd.to_datetime(hours["hour_start_utc"]) < naive]
    assert len(earlier) == marked and (earlier["mean_load_mw"] == -1).all()
    later = hours[pd.to_datetime(hours["hour_start_utc"]) >= naive]
    assert later["sample_count"].tolist() == [60, 60] and (later["mean_load_mw"] == 15.0).all()

    # A correction takes the second excursion back: re-running day1 drops its event, so does the mart.
    with build.conn.cursor() as cur:
        cur.execute(
            "UPDATE ops.grid_status SET frequency_hz = 50.0 WHERE grid_node_id = 'GN-4' AND measured_at >= %s",
            (midnight + timedelta(minutes=40),),
        )
    run_grid_days(build.conn, day1, day1, GridConfig())
    partition(day1)
    assert gn4_events() == [(naive - timedelta(minutes=5), naive + timedelta(minutes=20), False)]


def test_incremental_rebuild_keeps_archived_days_and_takes_late_readings(build: Build) -> None:
    """Runs last: archives MTR-2's first day out of `ops` (readings and VEE's rows; the other meters'
    rows of the day stay, as under a legal hold) and records the day in ops.lifecycle_days as the
    lifecycle does, adds a late reading far behind the lookback window and VEE's day for it, rebuilds
    incrementally: the archived day is not taken for a day MTR-2's readings were withdrawn from."""
    before = build.mart("SELECT * FROM marts.fct_consumption_daily WHERE meter_id = 'MTR-2'")
    archived_day = DAY0.date()
    late_start = DAY0 - timedelta(days=8)
    with build.conn.cursor() as cur:
        cur.execute(
            "DELETE FROM ops.meter_readings WHERE meter_id = 'MTR-2' AND reading_start < %s",
            (DAY0 + timedelta(days=1),),
        )
        assert cur.rowcount > 0
        cur.execute(
            "DELETE FROM ops.vee_readings WHERE meter_id = 'MTR-2' AND local_date = %s", (archived_day,)
        )
        assert cur.rowcount == 96
        cur.execute("DELETE FROM ops.vee_days WHERE meter_id = 'MTR-2' AND local_date = %s", (archived_day,))
        cur.execute(
            "INSERT INTO ops.lifecycle_days (dataset, day, tier, storage_class, object_key, manifest_key, "
            "row_count, bytes, checksum, sha256, verified_at, moved_at, hot_deleted_at, hot_rows_deleted) "
            "VALUES ('meter_readings', %s, 'warm', 'STANDARD', 'k', 'm', 1, 1, 'c', 's', now(), now(), now(), 1)",
            (archived_day,),
        )
        cur.execute(
            "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, "
            "record_version, batch_id) VALUES ('MTR-1', %s, 15, 0.75, 1, 'B-late')",
            (late_start,),
        )
    late = pd.DataFrame(
        {"meter_id": ["MTR-1"], "reading_start": [late_start], "interval_minutes": [15], "energy_kwh": [0.75]}
    )
    insert_all_actual_vee(build.conn, late, TIMEZONES)

    results = run_dbt_build(build.url, build.target)
    assert failures(results) == {}
    after = build.mart("SELECT * FROM marts.fct_consumption_daily WHERE meter_id = 'MTR-2'")
    pd.testing.assert_frame_equal(
        before.drop(columns="last_processed_at_utc").sort_values("local_date").reset_index(drop=True),
        after.drop(columns="last_processed_at_utc").sort_values("local_date").reset_index(drop=True),
    )
    assert archived_day in set(after["local_date"])
    late_day = build.mart(
        "SELECT kwh_import, kwh_actual, interval_count, missing_intervals, billing_ready "
        f"FROM marts.fct_consumption_daily WHERE meter_id = 'MTR-1' AND local_date = '{late_start.date()}'"
    )
    assert late_day.to_dict("records") == [
        {
            "kwh_import": 0.75,
            "kwh_actual": 0.75,
            "interval_count": 1,
            "missing_intervals": 95,
            "billing_ready": False,
        }
    ]


def test_meter_swap_opens_a_new_dim_meter_version(build: Build) -> None:
    """Runs after the incremental test: MTR-2 moves to another grid node; the snapshot keeps both."""
    with build.conn.cursor() as cur:
        cur.execute(
            "UPDATE ops.meters SET grid_node_id = 'GN-2', updated_at = now() + interval '1 minute' "
            "WHERE meter_id = 'MTR-2'"
        )
    assert failures(run_dbt_build(build.url, build.target)) == {}
    versions = build.mart(
        "SELECT * FROM marts.dim_meter WHERE meter_id = 'MTR-2' ORDER BY version_number"
    ).to_dict("records")
    assert [(v["grid_node_id"], v["is_current"]) for v in versions] == [("GN-1", False), ("GN-2", True)]
    assert versions[0]["valid_to_utc"] == versions[1]["valid_from_utc"]
    assert pd.isna(versions[1]["valid_to_utc"])
    others = build.mart("SELECT meter_id, count(*) AS n FROM marts.dim_meter GROUP BY meter_id")
    assert set(others.loc[others["meter_id"] != "MTR-2", "n"]) == {1}
