"""Environmental classes of a station-hour, defined once for Python and dbt (`warehouse.vars.dbt_vars`).

`marts.fct_weather_conditions` puts every station and UTC hour into a temperature band (on the hour's
mean temperature), a wind class (on its mean wind speed) and a precipitation class (on its total), and
raises an extreme-weather flag when any observation of the hour reaches the extreme band or class
(frost, heat, gale) or the hour's total is heavy rain. docs/weather.md gives each threshold's source.

A band or class starts at its lower edge (inclusive): 15.5 C is `mild`, 17.2 m/s is `gale`. The rain
classes follow the AMS definition, whose edges belong to the lower class: 2.5 mm/h is `light`, 7.6
mm/h `moderate`, more than 7.6 mm/h `heavy`.

Temperature is in every observation (the contract requires it: degree-days are built on it), so every
hour has a band. Wind and precipitation are optional (a station without an anemometer or a rain gauge):
an hour none of whose observations reports one has the class `unknown` (`NOT_REPORTED`), and its flag
is false.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from itertools import pairwise

from metrify_assets.weather.degree_days import COOLING_BASE_C, HEATING_BASE_C

TEMPERATURE_BANDS = ("freezing", "cold", "mild", "warm", "hot")
WIND_CLASSES = ("calm", "light", "moderate", "fresh", "strong", "gale", "storm")
PRECIPITATION_CLASSES = ("none", "light", "moderate", "heavy")
# The wind or precipitation class of an hour whose station reported no such measure.
NOT_REPORTED = "unknown"


@dataclass(frozen=True)
class WeatherClasses:
    # Temperature bands (C), on the hour's mean: freezing < cold_from <= cold < mild_from <= mild <
    # warm_from <= warm < hot_from <= hot.
    cold_from_c: float = 0.0  # the freezing point; an observation below it is air frost (Met Office)
    mild_from_c: float = HEATING_BASE_C  # below: heating degree-days accrue
    warm_from_c: float = COOLING_BASE_C  # from here: cooling degree-days accrue
    hot_from_c: float = 30.0  # KNMI's "tropical day" (maximum of 30.0 C or more)
    # Wind classes (m/s at 10 m), on the hour's mean: groups of the WMO Beaufort scale.
    light_wind_from_ms: float = 0.3  # force 1 (calm is force 0, 0-0.2 m/s)
    moderate_wind_from_ms: float = 5.5  # force 4, moderate breeze (light: forces 1-3)
    fresh_wind_from_ms: float = 8.0  # force 5, fresh breeze
    strong_wind_from_ms: float = 10.8  # forces 6-7, strong breeze and near gale
    gale_from_ms: float = 17.2  # forces 8-9, gale and strong gale
    storm_from_ms: float = 24.5  # forces 10-12, storm, violent storm and hurricane force
    # Precipitation classes (mm in the hour = mm/h): AMS Glossary of Meteorology, "rain".
    light_rain_max_mm_h: float = 2.5  # more than 0 up to 2.5: light
    moderate_rain_max_mm_h: float = 7.6  # up to 7.6: moderate; above: heavy

    def __post_init__(self) -> None:
        temperature = (self.cold_from_c, self.mild_from_c, self.warm_from_c, self.hot_from_c)
        wind = (
            self.light_wind_from_ms,
            self.moderate_wind_from_ms,
            self.fresh_wind_from_ms,
            self.strong_wind_from_ms,
            self.gale_from_ms,
            self.storm_from_ms,
        )
        rain = (0.0, self.light_rain_max_mm_h, self.moderate_rain_max_mm_h)
        for edges in (temperature, wind, rain):
            if any(b <= a for a, b in pairwise(edges)):
                raise ValueError(f"class edges must increase: {edges}")

    def dbt_vars(self) -> dict[str, float]:
        """The edges as dbt vars: `weather_<field>`."""
        return {f"weather_{f.name}": float(getattr(self, f.name)) for f in fields(self)}


WEATHER_CLASSES = WeatherClasses()
