"""Writing a run's forecasts and backtests into `ops.load_forecasts` and `ops.load_forecast_backtests`,
and the series' actuals into `ops.load_actuals` (migration 0016), as idempotent merges in one
transaction: each series' day (region, segment, local_date) the run recomputed is replaced whole
(rows it no longer makes go, e.g. a method that cannot forecast the day any more), every other day's
rows stay, and so do those of a series-day the run had no data to recompute (the caller gives no
rows for it). The new rows are merged on each table's primary key, so a row already stored under the same
key on another local day (a series whose timezone changed) is taken over rather than duplicated."""

from __future__ import annotations

from typing import Any

import pandas as pd
import psycopg

from metrify_assets.storage.writes import merge_frame, null_rows

FORECAST_COLUMNS = [
    "region",
    "segment",
    "reading_start",
    "local_date",
    "issued_for",
    "horizon_hour",
    "method",
    "p10_kwh",
    "p50_kwh",
    "p90_kwh",
    "selected",
    "model_version",
]
BACKTEST_COLUMNS = [
    "region",
    "segment",
    "local_date",
    "method",
    "origins",
    "intervals",
    "mae_kwh",
    "mape_pct",
    "smape_pct",
    "coverage",
    "selected",
    "model_version",
]

ACTUAL_COLUMNS = ["region", "segment", "reading_start", "local_date", "energy_kwh"]
SERIES_DAY = ["region", "segment", "local_date"]
# Each table's primary key (migration 0016) and the column stamped with the time of the write.
KEYS = {
    "load_forecasts": (["region", "segment", "reading_start", "method"], "forecast_at"),
    "load_forecast_backtests": (["region", "segment", "local_date", "method"], "forecast_at"),
    "load_actuals": (["region", "segment", "reading_start"], "loaded_at"),
}


def series_days(*frames: pd.DataFrame) -> pd.DataFrame:
    """The distinct (region, segment, local_date) of the rows of `frames`."""
    keyed = [f[SERIES_DAY] for f in frames if len(f)]
    if not keyed:
        return pd.DataFrame(columns=SERIES_DAY)
    return pd.concat(keyed, ignore_index=True).drop_duplicates(ignore_index=True)


def _replace(
    cur: psycopg.Cursor[Any], table: str, days: pd.DataFrame, frame: pd.DataFrame, columns: list[str]
) -> None:
    """Delete `table`'s rows of the series-days `days`, then merge `frame` on the table's key."""
    if len(days):
        cur.executemany(
            f"DELETE FROM ops.{table} WHERE region = %s AND segment = %s AND local_date = %s",
            list(null_rows(days[SERIES_DAY])),
        )
    if len(frame):
        key, stamp = KEYS[table]
        merge_frame(cur, table, frame, columns, key, stamp)


def write_forecasts(conn: psycopg.Connection, forecasts: pd.DataFrame, backtests: pd.DataFrame) -> None:
    """Replace, in both tables, every series-day (region, segment, local_date) either frame has rows
    for: a series-day with backtest rows and no forecast rows (or the other way round) loses what an
    earlier run stored for it in both. No other series-day is touched."""
    days = series_days(forecasts, backtests)
    with conn.cursor() as cur, conn.transaction():
        _replace(cur, "load_forecasts", days, forecasts, FORECAST_COLUMNS)
        _replace(cur, "load_forecast_backtests", days, backtests, BACKTEST_COLUMNS)


def write_actuals(conn: psycopg.Connection, actuals: pd.DataFrame) -> None:
    """Replace every (region, segment, local_date) the rows give a value for with its intervals that
    have one: an interval without a value (NaN) is not stored, so what an earlier run stored for it
    goes. A series-day without any value (its VEE series not there: not yet rebuilt after a restore,
    or its readings left PostgreSQL) is left as stored: there is nothing to recompute it from."""
    valued = actuals[actuals["energy_kwh"].notna()]
    with conn.cursor() as cur, conn.transaction():
        _replace(cur, "load_actuals", series_days(valued), valued, ACTUAL_COLUMNS)
