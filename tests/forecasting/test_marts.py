"""Forecasts against what happened, in the warehouse: `load_forecast` runs on real PostgreSQL for a day
and then the next, `dbt build` makes `fct_load_forecast` and `fct_forecast_accuracy`, and every figure
is checked against a hand computation from the VEE rows and the stored forecasts. The same `ops`
copied into Snowflake's RAW schema (fakesnow) builds the two marts with the same numbers.

Two series: north x residential (two meters, Europe/London) and south x commercial (one meter, UTC,
with a gap on the day the first run forecasts, so two of its quarter-hours have no actual)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import pytest

from metrify_assets.env import resolve_snowflake
from metrify_assets.forecasting.assets import load_forecast
from metrify_assets.forecasting.backtest import MAPE_FLOOR_SHARE, compared
from metrify_assets.resources import LakeResource, PostgresResource
from metrify_assets.resources.build import snowflake_resource
from metrify_assets.storage.migrate import truncate_ops
from metrify_assets.warehouse.connection import environment
from metrify_assets.warehouse.raw_copy import copy_all
from tests.warehouse.test_dbt_build import dbt_build, failures, insert, run_dbt_build
from tests.warehouse.test_snowflake import snowflake_env
from tests.warehouse.vee_rows import insert_all_actual_vee

pytestmark = pytest.mark.postgres

METERS = pd.DataFrame(
    {
        "meter_id": ["N-1", "N-2", "S-1"],
        "segment": ["residential", "residential", "commercial"],
        "region": ["north", "north", "south"],
        "timezone": ["Europe/London", "Europe/London", "UTC"],
    }
)
TIMEZONES = dict(zip(METERS["meter_id"], METERS["timezone"], strict=True))
FIRST = date(2026, 1, 5)  # a Monday; London is on UTC in January, so local days are UTC days
ISSUED = date(2026, 1, 15)  # the first run's partition: it forecasts 2026-01-16
SCORED = ISSUED + timedelta(days=1)  # the second run's partition: its actuals score the first's forecast
PENDING = SCORED + timedelta(days=1)  # forecast by the second run, not yet happened
GAP = [datetime(2026, 1, 16, 9, 0, tzinfo=UTC), datetime(2026, 1, 16, 9, 15, tzinfo=UTC)]
QUIET_HOUR = 3  # S-1 draws almost nothing from 03:00 to 04:00 UTC
CONFIG = {"window_days": 7, "backtest_days": 3, "workers": 1}
MARTS = "+fct_load_forecast +fct_forecast_accuracy"
SERIES = ["region", "segment"]
KEY = ["region", "segment", "local_date", "method"]


def readings() -> pd.DataFrame:
    """Quarter-hours from FIRST to SCORED for each meter: a daily curve with noise; S-1 quiet in
    QUIET_HOUR and missing GAP."""
    rng = np.random.default_rng(11)
    stamps = pd.date_range(datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 17, tzinfo=UTC), freq="15min")
    stamps = stamps[:-1]
    hour = stamps.hour.to_numpy() + stamps.minute.to_numpy() / 60
    shape = 0.4 + 0.3 * np.exp(-((hour - 8) ** 2) / 4) + 0.5 * np.exp(-((hour - 19) ** 2) / 6)
    frames = []
    for scale, meter in ((1.0, "N-1"), (1.4, "N-2"), (3.0, "S-1")):
        kwh = np.round(scale * shape * np.exp(rng.normal(0.0, 0.08, len(stamps))), 4)
        frames.append(pd.DataFrame({"meter_id": meter, "reading_start": stamps, "energy_kwh": kwh}))
    frame = pd.concat(frames, ignore_index=True).assign(interval_minutes=15, batch_id="F-1")
    quiet = (frame["meter_id"] == "S-1") & (frame["reading_start"].dt.hour == QUIET_HOUR)
    frame.loc[quiet, "energy_kwh"] = 0.002  # below MAPE's floor: MAPE skips these, sMAPE does not
    gap = (frame["meter_id"] == "S-1") & frame["reading_start"].isin(pd.DatetimeIndex(GAP))
    return frame[~gap].reset_index(drop=True)


@dataclass(frozen=True)
class Built:
    vee: pd.DataFrame
    results: list[dict[str, Any]]
    conn: psycopg.Connection

    def query(self, sql: str) -> pd.DataFrame:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            assert cur.description is not None
            return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def materialise(
    pg_resource: PostgresResource, lake: str, day: date, config: dict[str, Any] = CONFIG
) -> dict[str, Any]:
    """Run `load_forecast` for the partition `day`; returns its materialisation's metadata values."""
    result = dg.materialize(
        [load_forecast],
        resources={"postgres": pg_resource, "lake": LakeResource(url=lake)},
        partition_key=day.isoformat(),
        run_config={"ops": {"load_forecast": {"config": config}}},
    )
    assert result.success
    (event,) = result.asset_materializations_for_node("load_forecast")
    return {k: v.value for k, v in event.metadata.items()}


@pytest.fixture(scope="module")
def built(pg_resource: PostgresResource, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    lake = str(tmp_path_factory.mktemp("lake"))
    with pg_resource.connect(autocommit=True) as conn:
        truncate_ops(conn)
        insert(conn, "meters", METERS, {})
        vee = insert_all_actual_vee(conn, readings(), TIMEZONES)
        materialise(pg_resource, lake, ISSUED)
        materialise(pg_resource, lake, SCORED)
        results = run_dbt_build(
            pg_resource.get_url(), tmp_path_factory.mktemp("dbt_target"), "--select", *MARTS.split()
        )
        yield Built(vee, results, conn)


def expected_actuals(vee: pd.DataFrame) -> pd.DataFrame:
    """The series per quarter-hour by hand: the meters' VEE values summed per region x segment."""
    valued = vee[vee["energy_kwh"].notna()].merge(METERS, on="meter_id")
    valued = valued.assign(reading_start=pd.to_datetime(valued["reading_start"], utc=True))
    sums = valued.groupby([*SERIES, "reading_start"], as_index=False)["energy_kwh"].sum()
    return sums.rename(columns={"energy_kwh": "expected_kwh"})


def expected_accuracy(rows: pd.DataFrame, actuals: pd.DataFrame) -> pd.DataFrame:
    """MAE, MAPE, sMAPE and coverage per series, day and method from the forecast rows, as
    backtest.py scores them (the MAPE floor on the day's mean |actual|)."""
    scale = (
        actuals.assign(abs_kwh=actuals["energy_kwh"].abs()).groupby([*SERIES, "local_date"])["abs_kwh"].mean()
    )
    records = []
    for key, group in rows.groupby(KEY):
        scored = group.dropna(subset=["actual_kwh", "p50_kwh"])
        actual, p50 = scored["actual_kwh"].to_numpy(float), scored["p50_kwh"].to_numpy(float)
        error = np.abs(actual - p50)
        floor = MAPE_FLOOR_SHARE * scale.get(key[:3], np.nan)
        big = np.abs(actual) >= floor
        inside = (actual >= scored["p10_kwh"].to_numpy(float)) & (actual <= scored["p90_kwh"].to_numpy(float))
        records.append(
            {
                **dict(zip(KEY, key, strict=True)),
                "n": len(scored),
                "mae": error.mean() if len(scored) else np.nan,
                "mape": 100 * (error[big] / np.abs(actual[big])).mean() if big.any() else np.nan,
                "smape": 100 * (2 * error / (np.abs(actual) + np.abs(p50))).mean() if len(scored) else np.nan,
                "cover": inside.mean() if len(scored) else np.nan,
            }
        )
    return pd.DataFrame(records)


def test_the_marts_build_with_every_test_passing(built: Built) -> None:
    names = {r["unique_id"].split(".")[-1] for r in built.results if r["unique_id"].startswith("model.")}
    assert {"fct_load_forecast", "fct_forecast_accuracy", "stg_ops__load_actuals"} <= names
    assert failures(built.results) == {}
    assert sum(r["unique_id"].startswith("test.") for r in built.results) >= 20


def test_each_run_forecasts_the_next_day_and_stores_its_own_days_actuals(built: Built) -> None:
    forecasts = built.query(
        "SELECT region, segment, local_date, issued_for, count(*) AS n, count(DISTINCT method) AS methods, "
        "sum(selected::int) AS selected FROM ops.load_forecasts GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3"
    )
    assert forecasts[["region", "segment", "local_date"]].values.tolist() == [
        ["north", "residential", SCORED],
        ["north", "residential", PENDING],
        ["south", "commercial", SCORED],
        ["south", "commercial", PENDING],
    ]
    assert (forecasts["issued_for"] == forecasts["local_date"] - timedelta(days=1)).all()
    assert (forecasts["n"] == 96 * forecasts["methods"]).all() and (forecasts["methods"] >= 3).all()
    assert (forecasts["selected"] == 96).all()
    # every method's rows name what made them: no baseline claims a model
    versions = built.query("SELECT DISTINCT method, model_version FROM ops.load_forecasts")
    for method, version in versions.values:
        assert version.startswith("hgb-quantile-v1@" if method == "model" else f"{method}-v1@"), version
    # each run stored its own partition's day: the second run's is the day the first forecast
    actuals = built.query(
        "SELECT region, segment, local_date, count(*) AS n FROM ops.load_actuals GROUP BY 1, 2, 3"
    )
    assert sorted(map(tuple, actuals.values.tolist())) == [
        ("north", "residential", ISSUED, 96),
        ("north", "residential", SCORED, 96),
        ("south", "commercial", ISSUED, 96),
        ("south", "commercial", SCORED, 96 - len(GAP)),
    ]


def test_fct_load_forecast_joins_the_actuals_once_the_day_ran(built: Built) -> None:
    rows = built.query("SELECT * FROM marts.fct_load_forecast")
    stored = built.query("SELECT count(*) AS n FROM ops.load_forecasts")
    assert len(rows) == int(stored["n"].item())
    pending = rows[rows["local_date"] == PENDING]
    assert len(pending) and pending["actual_kwh"].isna().all() and pending["within_p10_p90"].isna().all()

    scored = rows[rows["local_date"] == SCORED].copy()
    scored["reading_start"] = pd.to_datetime(scored["reading_start_utc"]).dt.tz_localize("UTC")
    merged = scored.merge(expected_actuals(built.vee), on=[*SERIES, "reading_start"], how="left")
    assert len(merged) == len(scored)
    known = merged["expected_kwh"].notna()
    gap = (merged["region"] == "south") & merged["reading_start"].isin(pd.DatetimeIndex(GAP))
    assert (~known == gap).all()  # every interval has its actual but the gap's
    assert merged.loc[gap, "actual_kwh"].isna().all()
    np.testing.assert_allclose(
        merged.loc[known, "actual_kwh"].astype(float), merged.loc[known, "expected_kwh"], atol=1e-9
    )
    valued = merged[known & merged["p50_kwh"].notna()]
    np.testing.assert_allclose(
        valued["error_kwh"].astype(float),
        valued["actual_kwh"].astype(float) - valued["p50_kwh"].astype(float),
    )
    np.testing.assert_allclose(valued["abs_error_kwh"].astype(float), valued["error_kwh"].astype(float).abs())
    inside = (valued["actual_kwh"] >= valued["p10_kwh"]) & (valued["actual_kwh"] <= valued["p90_kwh"])
    assert (valued["within_p10_p90"] == inside).all()


def test_forecast_kwh_are_served_to_6_decimals_and_the_error_is_their_difference(built: Built) -> None:
    """The API served `p50_kwh` 2.9637000000000002 and `error_kwh` -0.015099999999999891: the model's
    doubles and their float difference. fct_load_forecast rounds the forecasts and the actual to 6
    decimals and takes the error as the exact difference of those, so each is the shortest form of a
    number of at most 6 decimals, and error = actual - P50 to the last digit served."""
    stored = built.query("SELECT p10_kwh, p50_kwh, p90_kwh FROM ops.load_forecasts WHERE p50_kwh IS NOT NULL")
    raw = stored["p50_kwh"].astype(float)
    assert (raw.round(6) != raw).sum() > 100  # the model's forecasts carry more places than that
    rows = built.query("SELECT * FROM marts.fct_load_forecast")
    columns = ["p10_kwh", "p50_kwh", "p90_kwh", "actual_kwh", "error_kwh", "abs_error_kwh"]
    values = [float(v) for column in columns for v in rows[column].dropna()]
    assert len(values) > 1000 and all(round(v, 6) == v for v in values)
    assert all(len(repr(v).partition(".")[2]) <= 6 for v in values)
    valued = rows.dropna(subset=["actual_kwh", "p50_kwh"])
    assert len(valued) > 100
    for actual, p50, error in valued[["actual_kwh", "p50_kwh", "error_kwh"]].itertuples(index=False):
        assert Decimal(repr(float(actual))) - Decimal(repr(float(p50))) == Decimal(repr(float(error)))
    accuracy = built.query("SELECT mae_kwh, backtest_mae_kwh FROM marts.fct_forecast_accuracy")
    maes = [float(v) for column in ("mae_kwh", "backtest_mae_kwh") for v in accuracy[column].dropna()]
    assert len(maes) > len(accuracy) and all(round(v, 6) == v for v in maes)


def test_fct_forecast_accuracy_equals_a_hand_computation(built: Built) -> None:
    rows = built.query("SELECT * FROM marts.fct_load_forecast")
    actuals = built.query("SELECT region, segment, local_date, energy_kwh FROM ops.load_actuals")
    expected = expected_accuracy(rows, actuals)
    accuracy = built.query("SELECT * FROM marts.fct_forecast_accuracy")
    merged = expected.merge(accuracy, on=KEY, how="outer", indicator=True)
    assert (merged["_merge"] == "both").all() and len(merged) == len(accuracy)
    assert (merged["n"] == merged["intervals_scored"]).all()
    day = merged[merged["local_date"] == SCORED]
    assert set(day.loc[day["region"] == "south", "intervals_scored"]) == {96 - len(GAP)}
    assert day[["mae_kwh", "mape_pct", "smape_pct", "coverage"]].notna().all().all()
    south = actuals[(actuals["region"] == "south") & (actuals["local_date"] == SCORED)]["energy_kwh"]
    assert (south.abs() < MAPE_FLOOR_SHARE * south.abs().mean()).sum() == 4  # the quiet hour, skipped
    for mine, theirs in (
        ("mape", "mape_pct"),
        ("smape", "smape_pct"),
        ("cover", "coverage"),
    ):
        np.testing.assert_allclose(
            day[theirs].astype(float), day[mine].astype(float), rtol=1e-9, err_msg=theirs
        )
    # kWh to 6 decimals (macros/math.sql `rounded`)
    np.testing.assert_allclose(day["mae_kwh"].astype(float), day["mae"].astype(float), rtol=0, atol=5e-7)
    pending = merged[merged["local_date"] == PENDING]
    assert (pending["intervals_scored"] == 0).all() and pending["mae_kwh"].isna().all()
    # the backtest's expectation sits beside the realised error
    backtests = built.query(
        "SELECT region, segment, local_date, method, mae_kwh AS bt FROM ops.load_forecast_backtests"
    )
    beside = accuracy.merge(backtests, on=KEY)
    assert len(beside) == len(backtests) == len(accuracy)
    np.testing.assert_allclose(
        beside["backtest_mae_kwh"].astype(float), beside["bt"].astype(float), rtol=0, atol=5e-7
    )
    chosen = accuracy[accuracy["selected"]]
    assert len(chosen) == 4 and chosen.groupby(KEY[:3]).size().eq(1).all()
    # every series had 10 days of history: each choice was the backtest's (backtest.compared), none a default
    compared_days = {
        key: compared(group) for key, group in backtests.rename(columns={"bt": "mae"}).groupby(KEY[:3])
    }
    assert all(compared_days.values()) and len(compared_days) == 4
    assert not accuracy["selected_by_default"].any()


def test_a_partitioned_run_tests_its_days_of_the_forecast_views(
    built: Built, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """Dagster passes the run's days: the staging views' tests read those days only."""
    window = json.dumps({"min_date": SCORED.isoformat(), "max_date": SCORED.isoformat()})
    views = ("stg_ops__load_forecasts", "stg_ops__load_forecast_backtests", "stg_ops__load_actuals")
    results = run_dbt_build(pg_resource.get_url(), tmp_path, "--select", *views, "--vars", window)
    assert failures(results) == {}
    compiled = [path.read_text() for path in (tmp_path / "compiled").rglob("unique_combination*.sql")]
    assert len(compiled) == len(views)
    assert all(f"between cast('{SCORED}' as date) and cast('{SCORED}' as date)" in sql for sql in compiled)


@pytest.mark.snowflake
def test_the_marts_build_on_snowflake_from_the_raw_copy(
    built: Built, snowflake_server: dict[str, Any], tmp_path: Path
) -> None:
    """The same `ops` copied to RAW (a database of this test's own on the fakesnow server) builds both
    marts with the PostgreSQL figures."""
    env = {**snowflake_env(snowflake_server), "METRIFY_SNOWFLAKE_DATABASE": "FORECASTS"}
    with environment(env):
        sf = snowflake_resource(resolve_snowflake(env))
        with sf.get_connection() as conn:
            copied = copy_all(built.conn, conn)
        assert copied["load_forecasts"] == len(built.query("SELECT 1 FROM ops.load_forecasts"))
        results = dbt_build({**os.environ, **env}, tmp_path, "--select", *MARTS.split())
        assert failures(results) == {}
        with sf.get_connection() as conn:
            cur = conn.cursor()
            cur.execute(
                "SELECT region, segment, local_date, method, intervals_scored, mae_kwh FROM marts.fct_forecast_accuracy"
            )
            on_snowflake = pd.DataFrame(cur.fetchall(), columns=[*KEY, "intervals_scored", "mae_kwh"])
    on_postgres = built.query(
        "SELECT region, segment, local_date, method, intervals_scored, mae_kwh FROM marts.fct_forecast_accuracy"
    )
    merged = on_postgres.merge(on_snowflake, on=KEY, suffixes=("_pg", "_sf"))
    assert len(merged) == len(on_postgres) == len(on_snowflake)
    assert (merged["intervals_scored_pg"] == merged["intervals_scored_sf"]).all()
    np.testing.assert_allclose(
        merged["mae_kwh_sf"].astype(float), merged["mae_kwh_pg"].astype(float), rtol=1e-9
    )


def test_an_interval_a_method_did_not_forecast_is_not_scored(
    built: Built, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """Where a method made no forecast (no P10/P50/P90) but the actual is known, within_p10_p90 is
    null, not false, as fct_forecast_accuracy leaves the interval unscored. Runs after the tests that
    compare figures (definition order)."""
    afternoon = datetime(2026, 1, 16, 12, 0, tzinfo=UTC)
    with built.conn.cursor() as cur:
        cur.execute(
            "UPDATE ops.load_forecasts SET p10_kwh = NULL, p50_kwh = NULL, p90_kwh = NULL "
            "WHERE region = 'north' AND method = 'seasonal_naive' AND local_date = %s AND reading_start >= %s",
            (SCORED, afternoon),
        )
        assert cur.rowcount == 48
    window = json.dumps({"min_date": SCORED.isoformat(), "max_date": SCORED.isoformat()})
    results = run_dbt_build(pg_resource.get_url(), tmp_path, "--select", *MARTS.split(), "--vars", window)
    assert failures(results) == {}  # the expression test: within_p10_p90 is null iff actual or P50 is
    rows = built.query(
        "SELECT reading_start_utc, actual_kwh, error_kwh, within_p10_p90 FROM marts.fct_load_forecast "
        f"WHERE region = 'north' AND method = 'seasonal_naive' AND local_date = '{SCORED}'"
    )
    unforecast = rows[pd.to_datetime(rows["reading_start_utc"]) >= afternoon.replace(tzinfo=None)]
    assert len(unforecast) == 48 and unforecast["actual_kwh"].notna().all()
    assert unforecast["within_p10_p90"].isna().all() and unforecast["error_kwh"].isna().all()
    forecast = rows.drop(unforecast.index)
    assert len(forecast) == 48 and forecast["within_p10_p90"].notna().all()
    accuracy = built.query(
        "SELECT intervals_scored, coverage FROM marts.fct_forecast_accuracy "
        f"WHERE region = 'north' AND method = 'seasonal_naive' AND local_date = '{SCORED}'"
    )
    expected = forecast["within_p10_p90"].astype(float).mean()
    assert accuracy.values.tolist() == [[48, pytest.approx(expected)]]


def test_a_point_forecast_is_not_a_miss(built: Built, pg_resource: PostgresResource, tmp_path: Path) -> None:
    """A method's day without P10/P90 (a baseline's point forecast) has within_p10_p90 null and null
    coverage, though its P50 is scored. Runs after the tests that compare figures (definition order)."""
    with built.conn.cursor() as cur:
        cur.execute(
            "UPDATE ops.load_forecasts SET p10_kwh = NULL, p90_kwh = NULL "
            "WHERE region = 'south' AND method = 'persistence' AND local_date = %s",
            (SCORED,),
        )
        assert cur.rowcount == 96
    window = json.dumps({"min_date": SCORED.isoformat(), "max_date": SCORED.isoformat()})
    results = run_dbt_build(pg_resource.get_url(), tmp_path, "--select", *MARTS.split(), "--vars", window)
    assert failures(results) == {}
    rows = built.query(
        "SELECT actual_kwh, p50_kwh, error_kwh, within_p10_p90 FROM marts.fct_load_forecast "
        f"WHERE region = 'south' AND method = 'persistence' AND local_date = '{SCORED}'"
    )
    assert len(rows) == 96 and rows["within_p10_p90"].isna().all()
    assert rows["error_kwh"].notna().sum() == 96 - len(GAP)
    accuracy = built.query(
        "SELECT intervals_scored, mae_kwh, coverage FROM marts.fct_forecast_accuracy "
        f"WHERE region = 'south' AND method = 'persistence' AND local_date = '{SCORED}'"
    )
    assert accuracy["intervals_scored"].tolist() == [96 - len(GAP)]
    assert accuracy["mae_kwh"].notna().all() and accuracy["coverage"].isna().all()


def test_a_choice_the_backtest_could_not_make_is_marked_a_default(
    built: Built, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """A series' day whose backtest scored one method (a young series: backtest.compared is false)
    has its chosen method marked `selected_by_default`, the API's and analysts' way to tell a default
    from a win. Runs before the rerun test, whose partition writes the day's backtests again."""
    with built.conn.cursor() as cur:
        cur.execute(
            "UPDATE ops.load_forecast_backtests SET mae_kwh = NULL "
            "WHERE region = 'south' AND local_date = %s AND NOT selected",
            (PENDING,),
        )
        assert cur.rowcount >= 1
    window = json.dumps({"min_date": SCORED.isoformat(), "max_date": SCORED.isoformat()})
    results = run_dbt_build(pg_resource.get_url(), tmp_path, "--select", *MARTS.split(), "--vars", window)
    assert failures(results) == {}
    rows = built.query(
        "SELECT region, local_date, method, selected, selected_by_default FROM marts.fct_forecast_accuracy"
    )
    marked = rows[rows["selected_by_default"]]
    assert marked[["region", "local_date"]].values.tolist() == [["south", PENDING]]
    assert marked["selected"].all()
    assert rows.groupby(["region", "local_date"]).size().gt(1).all()  # the other methods are rows too


def test_a_mart_built_before_the_column_takes_it_in_without_a_full_refresh(
    built: Built, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """An upgraded deployment: its fct_forecast_accuracy lacks selected_by_default. The next partition
    run appends it (filled on the days it rebuilds, null before) instead of failing every run."""
    built.conn.execute("ALTER TABLE marts.fct_forecast_accuracy DROP COLUMN selected_by_default")
    window = json.dumps({"min_date": PENDING.isoformat(), "max_date": PENDING.isoformat()})
    results = run_dbt_build(pg_resource.get_url(), tmp_path, "--select", *MARTS.split(), "--vars", window)
    assert failures(results) == {}
    rows = built.query("SELECT local_date, selected_by_default FROM marts.fct_forecast_accuracy")
    rebuilt = rows["local_date"] >= PENDING
    assert rebuilt.any() and rows.loc[rebuilt, "selected_by_default"].notna().all()
    assert rows.loc[~rebuilt, "selected_by_default"].isna().all() and (~rebuilt).any()


def test_a_rerun_replaces_its_days_actuals(
    built: Built, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """Runs last (definition order): a late value for the gap reaches the actuals when
    the day's partition runs again, and nothing else changes."""
    before = built.query("SELECT * FROM ops.load_actuals ORDER BY region, segment, reading_start")
    with built.conn.cursor() as cur:
        cur.execute(
            "UPDATE ops.vee_readings SET energy_kwh = 1.25, status = 'estimated', method = 'linear_interpolation' "
            "WHERE meter_id = 'S-1' AND reading_start = %s",
            (GAP[0],),
        )
    materialise(pg_resource, str(tmp_path / "lake"), SCORED)
    after = built.query("SELECT * FROM ops.load_actuals ORDER BY region, segment, reading_start")
    assert len(after) == len(before) + 1
    added = after.merge(before, on=["region", "segment", "reading_start"], how="left", indicator=True)
    (new,) = added[added["_merge"] == "left_only"].itertuples()
    assert new.energy_kwh_x == 1.25 and new.reading_start == GAP[0]
    # the day's partition of the marts (as Dagster runs them: min_date..max_date) takes the late value
    # in without a full refresh
    window = json.dumps({"min_date": SCORED.isoformat(), "max_date": SCORED.isoformat()})
    results = run_dbt_build(
        pg_resource.get_url(), tmp_path / "dbt", "--select", *MARTS.split(), "--vars", window
    )
    assert failures(results) == {}
    gap = built.query(
        "SELECT DISTINCT actual_kwh FROM marts.fct_load_forecast WHERE region = 'south' "
        f"AND reading_start_utc = '{GAP[0].replace(tzinfo=None).isoformat()}'"
    )
    assert list(gap["actual_kwh"]) == [1.25]
    scored = built.query(
        "SELECT method, intervals_scored FROM marts.fct_forecast_accuracy "
        f"WHERE region = 'south' AND local_date = '{SCORED.isoformat()}'"
    )
    assert (scored["intervals_scored"] == 96 - len(GAP) + 1).all()
