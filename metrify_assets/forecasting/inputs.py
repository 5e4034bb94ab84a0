"""What a forecast run reads from `ops`: the VEE series (billing-grade, gaps estimated) summed per
region x segment on the quarter-hour grid, and the temperature at the series' weather stations.

A meter's interval longer than a quarter-hour is spread evenly over its quarter-hours, a shorter one
lands in the quarter-hour it starts in. A series keeps the most common timezone of its meters (its
days are that timezone's days); meters not in the registry form the series `unknown` x `unknown` on
UTC. Missing and failed intervals (no value) add nothing.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import psycopg

from metrify_assets.contracts import UNREGISTERED
from metrify_assets.forecasting.series import STEP, LoadSeries
from metrify_assets.meters.days import day_params
from metrify_assets.storage.frames import read_frame

WEATHER_FILL = 16  # quarter-hours an observation stands for (hourly stations, a late one)

SERIES_SQL = f"""
SELECT coalesce(m.region, '{UNREGISTERED}') AS region, coalesce(m.segment, '{UNREGISTERED}') AS segment,
       q.slot_start AS reading_start,
       sum(v.energy_kwh / greatest(v.interval_minutes / 15.0, 1.0)) AS energy_kwh
FROM ops.vee_readings v
LEFT JOIN ops.meters m USING (meter_id)
CROSS JOIN LATERAL generate_series(
    date_bin('15 minutes', v.reading_start, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
    v.reading_start + make_interval(mins => greatest(v.interval_minutes, 15) - 15),
    interval '15 minutes'
) AS q(slot_start)
WHERE v.local_date BETWEEN %(first)s::date AND %(last)s::date AND v.energy_kwh IS NOT NULL
GROUP BY 1, 2, 3
"""

TIMEZONES_SQL = """
SELECT region, segment, mode() WITHIN GROUP (ORDER BY timezone) AS timezone FROM ops.meters GROUP BY 1, 2
"""

WEATHER_SQL = """
SELECT s.region, s.segment, date_bin('15 minutes', w.observed_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS at,
       avg(w.temperature_c) AS temperature_c
FROM (SELECT DISTINCT region, segment, weather_station_id FROM ops.meters
      WHERE weather_station_id IS NOT NULL) s
JOIN ops.weather_observations w ON w.station_id = s.weather_station_id
WHERE w.observed_at >= ((%(first)s::date - 1)::timestamp AT TIME ZONE 'UTC')
  AND w.observed_at < ((%(last)s::date + 3)::timestamp AT TIME ZONE 'UTC')
  AND w.temperature_c IS NOT NULL
GROUP BY 1, 2, 3
"""


def read_series(
    conn: psycopg.Connection, first: date, last: date, country: str
) -> dict[tuple[str, str], LoadSeries]:
    """(region, segment) -> its series over the local days `first`..`last`, with the temperature up
    to the end of the day after `last` (the forecast day) where stations reported it."""
    params = day_params(first, last)
    load = read_frame(conn, SERIES_SQL, params)
    if load.empty:
        return {}
    load["reading_start"] = pd.to_datetime(load["reading_start"], utc=True)
    zones = read_frame(conn, TIMEZONES_SQL)
    timezone = {(str(r.region), str(r.segment)): str(r.timezone) for r in zones.itertuples()}
    weather = read_frame(conn, WEATHER_SQL, params)
    weather["at"] = pd.to_datetime(weather["at"], utc=True)
    stations = {(str(r), str(s)): rows for (r, s), rows in weather.groupby(["region", "segment"], sort=False)}
    found: dict[tuple[str, str], LoadSeries] = {}
    for (region, segment), rows in load.groupby(["region", "segment"], sort=True):
        key = (str(region), str(segment))
        values = rows.set_index("reading_start")["energy_kwh"].astype("float64").sort_index()
        grid = pd.date_range(values.index.min(), values.index.max(), freq=STEP)
        temperature = pd.Series(np.nan, index=grid, dtype="float64")
        if key in stations:
            observed = stations[key].set_index("at")["temperature_c"].astype("float64").sort_index()
            span = pd.date_range(min(grid[0], observed.index[0]), observed.index[-1], freq=STEP)
            temperature = observed.reindex(span).ffill(limit=WEATHER_FILL)
        found[key] = LoadSeries(
            name=f"{key[0]}/{key[1]}",
            load=values.reindex(grid),
            temperature=temperature,
            timezone=timezone.get(key, "UTC") if key != (UNREGISTERED, UNREGISTERED) else "UTC",
            country=country,
        )
    return found
