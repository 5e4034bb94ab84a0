"""How fresh each mart must be: hourly marts follow the hourly schedule, the rest the daily one.

The windows leave one missed run of slack before the policy fails (a warning after one late run).
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

# Marts refreshed by the hourly schedule (`refresh_job`, minute 7 of every hour).
HOURLY_MARTS = frozenset(
    {"fct_consumption_hourly", "fct_grid_stability", "fct_grid_state_events", "fct_weather_conditions"}
)

HOURLY_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=3), warn_window=timedelta(hours=2)
)
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=50), warn_window=timedelta(hours=26)
)


def mart_freshness(model_name: str) -> dg.FreshnessPolicy:
    """The freshness policy of a mart model."""
    return HOURLY_FRESHNESS if model_name in HOURLY_MARTS else DAILY_FRESHNESS
