"""The weather room's thresholds and settings: valid, single-sourced, and what the dbt models name."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from scipy import stats

from metrify_assets.warehouse.paths import DBT_PROJECT_DIR
from metrify_assets.weather.conditions import (
    NOT_REPORTED,
    PRECIPITATION_CLASSES,
    TEMPERATURE_BANDS,
    WEATHER_CLASSES,
    WIND_CLASSES,
    WeatherClasses,
)
from metrify_assets.weather.degree_days import COOLING_BASE_C, HEATING_BASE_C
from metrify_assets.weather.sensitivity import CONFIDENCE, FIT_STATUSES, SENSITIVITY, SensitivitySettings


def mart_columns(model: str) -> dict[str, dict[str, object]]:
    marts = yaml.safe_load((DBT_PROJECT_DIR / "models" / "marts" / "_marts__models.yml").read_text())
    (spec,) = [m for m in marts["models"] if m["name"] == model]
    return {c["name"]: c for c in spec["columns"]}


def accepted_values(column: dict[str, object]) -> tuple[str, ...]:
    tests = column["data_tests"]
    assert isinstance(tests, list)
    (test,) = [t for t in tests if isinstance(t, dict) and "accepted_values" in t]
    return tuple(test["accepted_values"]["arguments"]["values"])


def test_bands_between_freezing_and_hot_are_the_degree_day_bases() -> None:
    assert WEATHER_CLASSES.mild_from_c == HEATING_BASE_C and WEATHER_CLASSES.warm_from_c == COOLING_BASE_C
    assert WEATHER_CLASSES.gale_from_ms == 17.2  # Beaufort 8
    assert (WEATHER_CLASSES.light_rain_max_mm_h, WEATHER_CLASSES.moderate_rain_max_mm_h) == (2.5, 7.6)  # AMS


def test_class_edges_must_increase() -> None:
    with pytest.raises(ValueError, match="increase"):
        WeatherClasses(mild_from_c=25.0)
    with pytest.raises(ValueError, match="increase"):
        WeatherClasses(light_rain_max_mm_h=8.0)


def test_sensitivity_settings_leave_degrees_of_freedom() -> None:
    assert (SENSITIVITY.window_days, SENSITIVITY.min_days, SENSITIVITY.min_degree_days) == (28, 14, 3)
    with pytest.raises(ValueError):
        SensitivitySettings(min_days=3)
    with pytest.raises(ValueError):
        SensitivitySettings(window_days=10, min_days=14)
    with pytest.raises(ValueError):
        SensitivitySettings(min_degree_days=1)


def test_the_marts_name_the_classes_python_names() -> None:
    conditions = mart_columns("fct_weather_conditions")
    assert accepted_values(conditions["temperature_band"]) == TEMPERATURE_BANDS
    # An hour whose station reported no wind or no precipitation has the class unknown.
    assert accepted_values(conditions["wind_class"]) == (*WIND_CLASSES, NOT_REPORTED)
    assert accepted_values(conditions["precipitation_class"]) == (*PRECIPITATION_CLASSES, NOT_REPORTED)
    assert accepted_values(mart_columns("fct_weather_sensitivity")["fit_status"]) == FIT_STATUSES
    sql = (DBT_PROJECT_DIR / "models" / "marts" / "fct_weather_conditions.sql").read_text()
    for name in (*TEMPERATURE_BANDS, *WIND_CLASSES, *PRECIPITATION_CLASSES, NOT_REPORTED):
        assert f"'{name}'" in sql


def test_t_critical_seed_equals_scipy() -> None:
    seed = pd.read_csv(DBT_PROJECT_DIR / "seeds" / "student_t_critical_values.csv")
    assert seed["df"].tolist() == list(range(1, 31))
    expected = stats.t.ppf(0.5 + CONFIDENCE / 2, seed["df"])
    assert seed["t_975"].to_numpy() == pytest.approx(expected, abs=1e-11)
