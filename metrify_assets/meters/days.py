"""Which meter readings belong to a run's days: one definition for every day-partitioned meter asset.

A reading belongs to the local day of its meter's timezone (UTC for a meter not in the registry),
as in dbt's `int_meter_readings_localized` and `ops.ingest_days`. The UTC bounds (a day either side:
no timezone is 14 h or more from UTC) let PostgreSQL use the BRIN index on `reading_start`, so a
run reads its days, not the history.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pandas as pd

LOCAL_TS = "(r.reading_start AT TIME ZONE coalesce(m.timezone, 'UTC'))"

DAY_WINDOW = (
    "r.reading_start >= ((%(first)s::date - 1)::timestamp AT TIME ZONE 'UTC') "
    "AND r.reading_start < ((%(last)s::date + 2)::timestamp AT TIME ZONE 'UTC') "
    f"AND {LOCAL_TS}::date BETWEEN %(first)s::date AND %(last)s::date"
)


def days_between(first: date, last: date) -> list[date]:
    """Every day from `first` to `last`, both included (empty when `last` is before `first`)."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def readings_of_days_sql(columns: str, order_by: str | None = None) -> str:
    """SELECT `columns` (over `r` readings and `m` meters) of the readings in days %(first)s..%(last)s."""
    query = (
        f"SELECT {columns} FROM ops.meter_readings r LEFT JOIN ops.meters m USING (meter_id) "
        f"WHERE {DAY_WINDOW}"
    )
    return f"{query} ORDER BY {order_by}" if order_by else query


def local_times(utc: pd.Series, timezones: pd.Series) -> pd.Series:
    """Each UTC timestamp on its own row's wall clock (naive), converted once per timezone: the
    Python side of `LOCAL_TS`, for the local day, hour and slot of a reading."""
    out = pd.Series(pd.NaT, index=utc.index, dtype="datetime64[ns]")
    for zone, idx in utc.groupby(timezones.to_numpy()).groups.items():
        out.loc[idx] = utc.loc[idx].dt.tz_convert(str(zone)).dt.tz_localize(None)
    return out


def day_params(first: date, last: date) -> dict[str, Any]:
    return {"first": first.isoformat(), "last": last.isoformat()}
