"""What training and scoring read from `ops`: a window's readings, the registry, the weather."""

from __future__ import annotations

from datetime import date

import pandas as pd
import psycopg

from metrify_assets.meters.anomaly.features import REGISTRY_COLUMNS, empty_registry, empty_weather
from metrify_assets.meters.days import day_params, readings_of_days_sql
from metrify_assets.storage.frames import read_frame

READINGS = "r.meter_id, r.reading_start, r.energy_kwh"


def read_readings(conn: psycopg.Connection, first: date, last: date) -> pd.DataFrame:
    """meter_id, reading_start (UTC), energy_kwh of the readings in local days `first`..`last`."""
    readings = read_frame(conn, readings_of_days_sql(READINGS), day_params(first, last))
    readings["reading_start"] = pd.to_datetime(readings["reading_start"], utc=True)
    return readings


def read_registry(conn: psycopg.Connection) -> pd.DataFrame:
    """The registry columns the features use (empty without a registry)."""
    registry = read_frame(conn, f"SELECT {', '.join(REGISTRY_COLUMNS)} FROM ops.meters")
    return registry if len(registry) else empty_registry()


def read_weather(conn: psycopg.Connection, first: date, last: date) -> pd.DataFrame:
    """Temperatures observed from a day before `first` (UTC) to the end of `last` plus a day, which
    covers every local day in between."""
    weather = read_frame(
        conn,
        "SELECT station_id, observed_at, temperature_c FROM ops.weather_observations "
        "WHERE observed_at >= ((%(first)s::date - 1)::timestamp AT TIME ZONE 'UTC') "
        "AND observed_at < ((%(last)s::date + 2)::timestamp AT TIME ZONE 'UTC')",
        day_params(first, last),
    )
    if weather.empty:
        return empty_weather()
    weather["observed_at"] = pd.to_datetime(weather["observed_at"], utc=True)
    return weather
