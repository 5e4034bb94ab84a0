"""The forecast writer on real PostgreSQL: every write is an idempotent merge. A re-run replaces the
series-days it recomputed (in both tables, whichever frame names them), never duplicates a row, and
leaves every other series-day alone. The trial's failure: a series-day with backtest rows and no forecast rows
(no method had the history) was not deleted before the backtests were copied in again, so every re-run
of 2026-03-30..31 failed on load_forecast_backtests_pkey."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import psycopg
import pytest

from metrify_assets.forecasting.writes import (
    ACTUAL_COLUMNS,
    BACKTEST_COLUMNS,
    FORECAST_COLUMNS,
    write_actuals,
    write_forecasts,
)

pytestmark = pytest.mark.postgres

DAY = date(2026, 3, 31)
BEFORE = DAY - timedelta(days=1)


def _start(day: date, quarter: int) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=15 * quarter)


def forecasts(region: str, segment: str, day: date, p50: float, quarters: int = 2) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": region,
            "segment": segment,
            "reading_start": [_start(day, q) for q in range(quarters)],
            "local_date": day,
            "issued_for": day - timedelta(days=1),
            "horizon_hour": 0,
            "method": "persistence",
            "p10_kwh": [None] * quarters,
            "p50_kwh": p50,
            "p90_kwh": [None] * quarters,
            "selected": True,
            "model_version": f"persistence-v1@{day}",
        }
    )[FORECAST_COLUMNS]


def backtests(
    region: str, segment: str, day: date, mae: float, methods: tuple[str, ...] = ("persistence",)
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": region,
            "segment": segment,
            "local_date": day,
            "method": list(methods),
            "origins": 1,
            "intervals": 96,
            "mae_kwh": mae,
            "mape_pct": None,
            "smape_pct": None,
            "coverage": None,
            "selected": [m == methods[0] for m in methods],
            "model_version": [f"{m}-v1@{day}" for m in methods],
        }
    )[BACKTEST_COLUMNS]


def rows(conn: psycopg.Connection, table: str) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM ops.{table} ORDER BY 1, 2, 3, 4")
        assert cur.description is not None
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def count(conn: psycopg.Connection, table: str, **where: Any) -> int:
    condition = " AND ".join(f"{k} = %({k})s" for k in where) or "true"
    row = conn.execute(f"SELECT count(*) FROM ops.{table} WHERE {condition}", where).fetchone()
    assert row is not None
    return int(row[0])


def test_a_rerun_with_backtests_for_a_day_without_forecasts_replaces_them(pg: psycopg.Connection) -> None:
    """The trial's 2026-03-31: london/residential had a backtest (persistence scored on an earlier
    origin) and no forecast rows; north/commercial had both."""
    made = forecasts("north", "commercial", DAY, 1.0)
    tested = pd.concat(
        [backtests("north", "commercial", DAY, 0.5), backtests("london", "residential", DAY, 0.7)]
    )
    write_forecasts(pg, made, tested)
    write_forecasts(pg, forecasts("north", "commercial", DAY, 2.0), tested.assign(mae_kwh=0.9))
    stored = rows(pg, "load_forecast_backtests")
    assert len(stored) == 2 and set(stored["mae_kwh"]) == {0.9}
    assert list(rows(pg, "load_forecasts")["p50_kwh"]) == [2.0, 2.0]


def test_a_rerun_leaves_the_days_it_did_not_recompute(pg: psycopg.Connection) -> None:
    """Backtests one day, forecasts the next (the frames' days differ): each of the two series-days is
    replaced in both tables, the day before stays."""
    write_forecasts(
        pg, forecasts("north", "commercial", BEFORE, 1.0), backtests("north", "commercial", BEFORE, 0.5)
    )
    write_forecasts(
        pg, forecasts("north", "commercial", DAY, 1.0), backtests("north", "commercial", DAY, 0.5)
    )
    write_forecasts(
        pg, forecasts("north", "commercial", DAY, 3.0), backtests("south", "commercial", DAY, 0.4)
    )
    assert count(pg, "load_forecasts", local_date=BEFORE) == 2
    assert count(pg, "load_forecast_backtests", local_date=BEFORE) == 1
    assert list(rows(pg, "load_forecasts").query("local_date == @DAY")["p50_kwh"]) == [3.0, 3.0]
    # north/commercial's day was recomputed (its forecasts are in the frame): its old backtest goes
    assert rows(pg, "load_forecast_backtests").query("local_date == @DAY")["region"].tolist() == ["south"]


def test_a_rerun_drops_the_methods_it_no_longer_makes_and_keeps_series_it_did_not_write(
    pg: psycopg.Connection,
) -> None:
    """north/commercial's day written again with one method where it had two: the other's rows go from
    both tables. south/commercial, not in the re-run's frames (a series-day it had no data for), stands."""
    two = ("persistence", "seasonal_naive")
    made = pd.concat(
        [
            forecasts("north", "commercial", DAY, 1.0),
            forecasts("north", "commercial", DAY, 1.0).assign(method="seasonal_naive", selected=False),
            forecasts("south", "commercial", DAY, 1.0),
        ]
    )
    write_forecasts(
        pg,
        made,
        pd.concat(
            [backtests("north", "commercial", DAY, 0.5, two), backtests("south", "commercial", DAY, 0.5)]
        ),
    )
    write_forecasts(
        pg, forecasts("north", "commercial", DAY, 1.5), backtests("north", "commercial", DAY, 0.6)
    )
    north = rows(pg, "load_forecasts").query("region == 'north'")
    assert set(north["method"]) == {"persistence"} and set(north["p50_kwh"]) == {1.5}
    assert count(pg, "load_forecasts", region="south") == 2
    assert rows(pg, "load_forecast_backtests")[["region", "method", "mae_kwh"]].values.tolist() == [
        ["north", "persistence", 0.6],
        ["south", "persistence", 0.5],
    ]


def test_a_quarter_hour_stored_under_another_local_day_is_merged_not_duplicated(
    pg: psycopg.Connection,
) -> None:
    """The primary keys are by UTC instant, the replaced days by local date: a series whose timezone
    moved files the same quarter-hour under another day. The write takes the row over."""
    write_forecasts(
        pg, forecasts("north", "commercial", DAY, 1.0), backtests("north", "commercial", DAY, 0.5)
    )
    moved = forecasts("north", "commercial", DAY, 2.0).assign(
        local_date=BEFORE, issued_for=BEFORE - timedelta(days=1)
    )
    write_forecasts(pg, moved, backtests("north", "commercial", BEFORE, 0.5))
    stored = rows(pg, "load_forecasts")
    assert len(stored) == 2 and set(stored["local_date"]) == {BEFORE} and set(stored["p50_kwh"]) == {2.0}
    actuals = pd.DataFrame(
        {
            "region": "north",
            "segment": "commercial",
            "reading_start": [_start(DAY, 0)],
            "local_date": DAY,
            "energy_kwh": 1.0,
        }
    )[ACTUAL_COLUMNS]
    write_actuals(pg, actuals)
    write_actuals(pg, actuals.assign(local_date=BEFORE, energy_kwh=4.0))
    assert rows(pg, "load_actuals")[["local_date", "energy_kwh"]].values.tolist() == [[BEFORE, 4.0]]


def test_actuals_rerun_replaces_the_day_and_keeps_the_others(pg: psycopg.Connection) -> None:
    def day_of(day: date, values: list[float | None]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "region": "north",
                "segment": "commercial",
                "reading_start": [_start(day, q) for q in range(len(values))],
                "local_date": day,
                "energy_kwh": values,
            }
        )[ACTUAL_COLUMNS]

    write_actuals(pg, day_of(BEFORE, [1.0, 1.0]))
    write_actuals(pg, day_of(DAY, [1.0, 1.0, 1.0]))
    write_actuals(pg, day_of(DAY, [2.0, None, 2.0]))  # a value withdrawn: its row goes
    write_actuals(pg, day_of(DAY, [2.0, None, 2.0]))
    # a day without any value (its VEE series not there, e.g. not rebuilt after a restore): left as stored
    write_actuals(pg, day_of(BEFORE, [None, None]))
    stored = rows(pg, "load_actuals")
    assert stored.query("local_date == @BEFORE")["energy_kwh"].tolist() == [1.0, 1.0]
    assert stored.query("local_date == @DAY")["energy_kwh"].tolist() == [2.0, 2.0]
