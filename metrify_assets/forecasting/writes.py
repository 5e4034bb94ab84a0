"""Writing a run's forecasts and backtests into `ops.load_forecasts` and `ops.load_forecast_backtests`,
and the series' actuals into `ops.load_actuals` (migration 0016): a series' day written again
replaces its rows, in one transaction."""

from __future__ import annotations

from typing import Any

import pandas as pd
import psycopg

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


def _rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    clean = frame.astype(object).where(frame.notna(), None)
    return list(clean.itertuples(index=False, name=None))


def write_forecasts(conn: psycopg.Connection, forecasts: pd.DataFrame, backtests: pd.DataFrame) -> None:
    """Replace the (region, segment, local_date) of every row given, then insert them."""
    days = forecasts[["region", "segment", "local_date"]].drop_duplicates()
    with conn.cursor() as cur, conn.transaction():
        for table in ("load_forecasts", "load_forecast_backtests"):
            cur.executemany(
                f"DELETE FROM ops.{table} WHERE region = %s AND segment = %s AND local_date = %s",
                _rows(days),
            )
        for table, frame, columns in (
            ("load_forecasts", forecasts, FORECAST_COLUMNS),
            ("load_forecast_backtests", backtests, BACKTEST_COLUMNS),
        ):
            with cur.copy(f"COPY ops.{table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in _rows(frame[columns]):
                    copy.write_row(row)


def write_actuals(conn: psycopg.Connection, actuals: pd.DataFrame) -> None:
    """Replace every (region, segment, local_date) the rows cover with its intervals that have a
    value: an interval without one (NaN) is not stored, so what an earlier run stored for it goes."""
    days = actuals[["region", "segment", "local_date"]].drop_duplicates()
    valued = actuals[actuals["energy_kwh"].notna()]
    with conn.cursor() as cur, conn.transaction():
        cur.executemany(
            "DELETE FROM ops.load_actuals WHERE region = %s AND segment = %s AND local_date = %s",
            _rows(days),
        )
        with cur.copy(f"COPY ops.load_actuals ({', '.join(ACTUAL_COLUMNS)}) FROM STDIN") as copy:
            for row in _rows(valued[ACTUAL_COLUMNS]):
                copy.write_row(row)
