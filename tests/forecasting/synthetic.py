"""A synthetic load series whose shape the tests know: a daily curve, quieter weekends, and a heating
load that follows the temperature (which the model sees and the seasonal baselines cannot)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrify_assets.forecasting.series import LoadSeries


def synthetic(
    days: int = 42,
    start: str = "2026-01-05",
    timezone: str = "UTC",
    noise: float = 0.03,
    heating_kwh_per_degree: float = 0.6,
    seed: int = 7,
) -> LoadSeries:
    """Quarter-hourly kWh from local midnight of `start` (a Monday) for `days` days, with a
    temperature that swings by +/- 6 C from day to day."""
    rng = np.random.default_rng(seed)
    begin = pd.Timestamp(start).tz_localize(timezone).tz_convert("UTC")
    stamps = pd.date_range(begin, periods=96 * days, freq="15min")
    local = stamps.tz_convert(timezone)
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60
    daily_swing = rng.normal(0.0, 6.0, days + 2)
    day_index = (stamps - begin).days.to_numpy()
    temperature = 8.0 + daily_swing[day_index] + 3.0 * np.sin((hour - 9) / 24 * 2 * np.pi)
    weekend = local.day_of_week.to_numpy() >= 5
    shape = 10.0 + 6.0 * np.exp(-((hour - 8) ** 2) / 4) + 8.0 * np.exp(-((hour - 19) ** 2) / 6)
    load = shape * np.where(weekend, 0.8, 1.0) + heating_kwh_per_degree * np.maximum(15.5 - temperature, 0)
    load = load * np.exp(rng.normal(0.0, noise, len(stamps)))
    return LoadSeries(
        name="synthetic",
        load=pd.Series(load, index=stamps),
        temperature=pd.Series(temperature, index=stamps),
        timezone=timezone,
        country="GB",
    )
