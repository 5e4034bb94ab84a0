"""The weather marts built by dbt, on PostgreSQL and on Snowflake (fakesnow's server mode).

The data set: the real OpenSTEF location (tests/fixtures/openstef_307_test.csv) as one meter and one
station through the `openstef` ingest preset, with its registry row; a synthetic region whose 28 days
span heating and cooling weather, with a residential and an industrial meter (about 300 times its
energy) on one station; a station whose hours sit on every class edge; and one that misses measures
(null humidity, pressure, wind or precipitation). VEE's own store
(`run_days`) turns the readings into the billing-grade series the consumption marts read.

`fct_weather_sensitivity` is checked against statsmodels' OLS on the same days, computed from the
fixture file (OpenSTEF) or the generating arrays (synthetic region: each segment on its own meter),
never from the database;
`fct_weather_conditions` against hand-written classes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import pytest
import statsmodels.api as sm

from metrify_assets.contracts import WEATHER_OBSERVATIONS
from metrify_assets.env import resolve_snowflake
from metrify_assets.ingestion.readers import ingest_file
from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.store import process_days, read_reviewed, run_days, write
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.build import snowflake_resource
from metrify_assets.storage.migrate import truncate_ops
from metrify_assets.warehouse.connection import environment
from metrify_assets.warehouse.snowflake import warehouse_load
from metrify_assets.weather.degree_days import COOLING_BASE_C, HEATING_BASE_C
from metrify_assets.weather.sensitivity import SENSITIVITY
from tests.warehouse.test_dbt_build import dbt_build, failures, insert, places, run_dbt_build
from tests.warehouse.test_snowflake import snowflake_env

pytestmark = pytest.mark.postgres

OPENSTEF = Path(__file__).parents[1] / "fixtures" / "openstef_307_test.csv"
OPENSTEF_REGION = "openstef-307"
OPENSTEF_TZ = "Europe/Amsterdam"
SYNTHETIC_REGION = "synthetic"
SYNTHETIC_START = date(2021, 4, 1)
SYNTHETIC_DAYS = 28
EDGE_STATION = "WX-EDGES"
EDGE_DAY = datetime(2021, 1, 4, tzinfo=UTC)
# The weather marts and everything they read (the consumption facts, VEE's views, the seed), with the
# tests whose every parent is among them.
SELECT = (
    "--select",
    "+fct_weather_sensitivity",
    "+fct_weather_conditions",
    "--indirect-selection",
    "cautious",
)

METERS = pd.DataFrame(
    {
        "meter_id": ["OPENSTEF-307", "SYN-1", "SYN-IND"],
        "segment": ["commercial", "residential", "industrial"],
        "region": [OPENSTEF_REGION, SYNTHETIC_REGION, SYNTHETIC_REGION],
        "weather_station_id": ["OPENSTEF-307", "WX-SYN", "WX-SYN"],
        "timezone": [OPENSTEF_TZ, "UTC", "UTC"],
    }
)

# One observation per hour on every edge: (temperature C, wind m/s, precipitation mm) -> (band, wind
# class, precipitation class, frost, heat, gale, heavy rain). Edges belong to the class above, except
# the AMS rain edges (2.5 and 7.6 mm/h), which belong to the class below.
EDGE_HOURS: list[tuple[tuple[float, float, float], tuple[str, str, str, bool, bool, bool, bool]]] = [
    ((-0.1, 0.0, 0.0), ("freezing", "calm", "none", True, False, False, False)),
    ((0.0, 0.2, 0.1), ("cold", "calm", "light", False, False, False, False)),
    ((15.4, 0.3, 2.5), ("cold", "light", "light", False, False, False, False)),
    ((15.5, 5.4, 2.6), ("mild", "light", "moderate", False, False, False, False)),
    ((21.9, 5.5, 7.6), ("mild", "moderate", "moderate", False, False, False, False)),
    ((22.0, 7.9, 7.7), ("warm", "moderate", "heavy", False, False, False, True)),
    ((29.9, 8.0, 0.0), ("warm", "fresh", "none", False, False, False, False)),
    ((30.0, 10.7, 0.0), ("hot", "fresh", "none", False, True, False, False)),
    ((10.0, 10.8, 0.0), ("cold", "strong", "none", False, False, False, False)),
    ((10.0, 17.1, 0.0), ("cold", "strong", "none", False, False, False, False)),
    ((10.0, 17.2, 0.0), ("cold", "gale", "none", False, False, True, False)),
    ((10.0, 24.4, 0.0), ("cold", "gale", "none", False, False, True, False)),
    ((10.0, 24.5, 0.0), ("cold", "storm", "none", False, False, True, False)),
]
# Hours of several observations: classes on the hour's means and total, flags on any observation.
MIXED_HOURS: list[tuple[list[tuple[float, float, float]], tuple[str, str, str, bool, bool, bool, bool]]] = [
    # mean 1.0 C (cold) but one observation below 0: frost; mean wind 13.5 (strong), max 18: gale;
    # four light quarter-hours add up to 7.7 mm: heavy rain.
    (
        [(-1.0, 10.0, 2.0), (1.0, 12.0, 2.0), (2.0, 14.0, 2.0), (2.0, 18.0, 1.7)],
        ("cold", "strong", "heavy", True, False, True, True),
    ),
    # mean 29.5 C (warm) but 31 C observed: heat; mean wind 0.25 m/s: calm; 2.5 mm: light.
    ([(28.0, 0.1, 1.25), (31.0, 0.4, 1.25)], ("warm", "calm", "light", False, True, False, False)),
]


# A station that misses measures (a broken hygrometer, no anemometer or rain gauge: the contract's
# optional fields, stored NULL). Per hour, its observations (temperature, humidity, pressure, wind,
# precipitation; None not reported) -> (band, wind class, precipitation class, frost, gale, heavy rain,
# mean humidity, mean wind, precipitation). Temperature is in every observation (it is required).
GAP_STATION = "WX-GAPS"
Measures = tuple[float, float | None, float | None, float | None, float | None]
GAP_HOURS: list[tuple[list[Measures], tuple[Any, ...]]] = [
    # the user's trial: humidity null, the rest reported
    ([(9.5, None, 1012.0, 3.2, 0.0)], ("cold", "light", "none", False, False, False, None, 3.2, 0.0)),
    # temperature alone: wind and precipitation unknown, not calm and dry; no flag from them
    ([(9.5, None, None, None, None)], ("cold", "unknown", "unknown", False, False, False, None, None, None)),
    # two observations, one without wind or rain: the hour's figures are the other's
    (
        [(10.0, 90.0, 1000.0, 20.0, 8.0), (12.0, None, None, None, None)],
        ("cold", "gale", "heavy", False, True, True, 90.0, 20.0, 8.0),
    ),
    # frost is judged on temperature, whatever else is missing
    (
        [(-2.0, None, None, None, None)],
        ("freezing", "unknown", "unknown", True, False, False, None, None, None),
    ),
]


def gap_observations() -> pd.DataFrame:
    rows = [
        (EDGE_DAY + timedelta(hours=hour, minutes=10 * i), *measures)
        for hour, (observations, _) in enumerate(GAP_HOURS)
        for i, measures in enumerate(observations)
    ]
    columns = WEATHER_OBSERVATIONS.columns[1:]  # the contract's fields after station_id
    # As objects, so a measure not reported is inserted as NULL (not NaN).
    return pd.DataFrame(rows, columns=columns, dtype=object).assign(station_id=GAP_STATION)


def preset_frame(source: str) -> pd.DataFrame:
    """The fixture through the `openstef` preset, as rows of `source`'s contract."""
    result = ingest_file(OPENSTEF, source, preset="openstef")
    assert result.records == 2878 and result.skipped == {}
    return pd.DataFrame([json.loads(line) for line in result.lines])


def to_places(value: float, places: int) -> float:
    """`value` to `places` decimals as the marts round it (macros/math.sql `rounded`): PostgreSQL reads
    the double to 15 significant digits, then to 12 places, and rounds that half away from zero."""
    twelve = Decimal(f"{value:.15g}").quantize(Decimal("1e-12"), rounding=ROUND_HALF_UP)
    return float(twelve.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def openstef_days() -> pd.DataFrame:
    """Per local day of the fixture file, straight from its columns: kWh imported (MW x 250 for the
    quarter-hours with positive load), mean temperature, degree-days, and whether the day is whole.
    Temperatures as the marts serve them, to 4 decimals (docs/warehouse.md): each UTC hour's mean of its
    quarter-hours (fct_weather_conditions), then the day's mean of its hours weighted by their counts
    (fct_weather_impact), and the degree-days from that."""
    raw = pd.read_csv(OPENSTEF)
    stamps = pd.to_datetime(raw.iloc[:, 0], utc=True)
    frame = pd.DataFrame(
        {
            "local_date": stamps.dt.tz_convert(OPENSTEF_TZ).dt.date,
            "hour": stamps.dt.floor("h"),
            "kwh_import": raw["load"].clip(lower=0) * 250.0,
            "temperature": raw["temp"],
        }
    )
    days = frame.groupby("local_date").agg(intervals=("kwh_import", "size"), y=("kwh_import", "sum"))
    hours = frame.groupby("hour").agg(mean=("temperature", "mean"), n=("temperature", "size"))
    hours["mean"] = [to_places(v, 4) for v in hours["mean"]]
    hours["local_date"] = hours.index.tz_convert(OPENSTEF_TZ).date
    weighted = (hours["mean"] * hours["n"]).groupby(hours["local_date"]).sum()
    temperature = weighted / hours.groupby("local_date")["n"].sum()
    days["temperature"] = [to_places(v, 4) for v in temperature.loc[days.index]]
    days["hdd"] = [to_places(max(HEATING_BASE_C - t, 0.0), 4) for t in days["temperature"]]
    days["cdd"] = [to_places(max(t - COOLING_BASE_C, 0.0), 4) for t in days["temperature"]]
    days["whole"] = days["intervals"] == 96  # no daylight-saving change in November
    return days


@dataclass(frozen=True)
class Synthetic:
    """A region whose days run from 9 to 27 C: heating and cooling days in one window, with a
    residential meter (y) and an industrial one (y_industrial, about 300 times y and its own slopes)."""

    days: pd.DataFrame  # by local_date: temperature, hdd, cdd, y, y_industrial

    @staticmethod
    def make() -> Synthetic:
        rng = np.random.default_rng(11)
        d = np.arange(SYNTHETIC_DAYS)
        temperature = np.round(
            18.0 + 7.5 * np.sin(2 * np.pi * d / SYNTHETIC_DAYS) + rng.normal(0, 1.5, d.size), 2
        )
        hdd = np.clip(HEATING_BASE_C - temperature, 0, None)
        cdd = np.clip(temperature - COOLING_BASE_C, 0, None)
        # Quarter-hours of equal energy, in whole micro-kWh (VEE stores energies rounded to 1e-6 kWh).
        quarter_hour_kwh = np.round((40.0 + 2.5 * hdd + 4.0 * cdd + rng.normal(0, 3.0, d.size)) / 96, 6)
        y = 96 * quarter_hour_kwh
        industrial_kwh = np.round((12000.0 + 30.0 * hdd + 90.0 * cdd + rng.normal(0, 40.0, d.size)) / 96, 6)
        days = [SYNTHETIC_START + timedelta(days=int(i)) for i in d]
        return Synthetic(
            pd.DataFrame(
                {
                    "temperature": temperature,
                    "hdd": hdd,
                    "cdd": cdd,
                    "y": y,
                    "y_industrial": 96 * industrial_kwh,
                },
                index=pd.Index(days, name="local_date"),
            )
        )

    def readings(self) -> pd.DataFrame:
        rows = [
            {
                "meter_id": meter_id,
                "reading_start": datetime.combine(day, datetime.min.time(), UTC) + timedelta(minutes=15 * q),
                "interval_minutes": 15,
                "energy_kwh": y / 96,
                "direction": "import",
            }
            for meter_id, column in (("SYN-1", "y"), ("SYN-IND", "y_industrial"))
            for day, y in zip(self.days.index, self.days[column], strict=True)
            for q in range(96)
        ]
        return pd.DataFrame(rows)

    def weather(self) -> pd.DataFrame:
        rows = [
            {
                "station_id": "WX-SYN",
                "observed_at": datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=h),
                "temperature_c": t,
            }
            for day, t in zip(self.days.index, self.days["temperature"], strict=True)
            for h in range(24)
        ]
        return pd.DataFrame(rows)


def edge_observations() -> pd.DataFrame:
    rows = []
    for hour, ((temperature, wind, rain), _) in enumerate(EDGE_HOURS):
        rows.append((EDGE_DAY + timedelta(hours=hour), temperature, wind, rain))
    for offset, (observations, _) in enumerate(MIXED_HOURS):
        start = EDGE_DAY + timedelta(hours=len(EDGE_HOURS) + offset)
        for i, (temperature, wind, rain) in enumerate(observations):
            rows.append((start + timedelta(minutes=15 * i), temperature, wind, rain))
    frame = pd.DataFrame(rows, columns=["observed_at", "temperature_c", "wind_speed_ms", "precipitation_mm"])
    return frame.assign(station_id=EDGE_STATION)


def load(conn: psycopg.Connection, synthetic: Synthetic) -> None:
    """Registry, readings and observations into `ops`, then VEE over every day they touch."""
    truncate_ops(conn)
    insert(conn, "meters", METERS, {})
    readings = preset_frame("meter_readings")
    insert(conn, "meter_readings", readings, {"record_version": 1, "batch_id": "openstef"})
    insert(conn, "meter_readings", synthetic.readings(), {"record_version": 1, "batch_id": "synthetic"})
    weather = preset_frame("weather_observations")
    insert(conn, "weather_observations", weather, {"record_version": 1, "batch_id": "openstef"})
    fixed = {"humidity_pct": 80.0, "pressure_hpa": 1010.0, "record_version": 1, "batch_id": "weather"}
    insert(
        conn,
        "weather_observations",
        synthetic.weather(),
        {**fixed, "wind_speed_ms": 3.0, "precipitation_mm": 0.0},
    )
    insert(conn, "weather_observations", edge_observations(), fixed)
    insert(conn, "weather_observations", gap_observations(), {"record_version": 1, "batch_id": "gaps"})
    conn.commit()
    vee_openstef(conn)
    run_days(conn, SYNTHETIC_START, SYNTHETIC_START + timedelta(days=SYNTHETIC_DAYS - 1), VeeConfig())


def vee_openstef(conn: psycopg.Connection) -> None:
    """VEE of the OpenSTEF location's days (2020-10-30..12-01), written without VEE's GX guard: the
    location is a whole distribution-grid connection, 63 % of its quarter-hours above the 1000 kWh a
    meter's interval may hold (the record rule `energy_implausible` and the suite's bound), which is
    why its records go into `ops` directly. The guard is tested on meters (tests/meters/vee)."""
    first, last, config = date(2020, 10, 30), date(2020, 12, 1), VeeConfig()
    now = pd.Timestamp.now(tz="UTC")
    result = process_days(conn, first, last, config, now, None, read_reviewed(conn, first, last))
    write(conn, result, first, last, config.rule_version, None)
    conn.commit()


def query(conn: psycopg.Connection, sql: str) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(sql)
        assert cur.description is not None
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


@dataclass(frozen=True)
class Build:
    synthetic: Synthetic
    results: list[dict[str, Any]]
    conn: psycopg.Connection
    url: str
    target: Path

    def sensitivity(self, region: str, segment: str) -> pd.DataFrame:
        frame = query(
            self.conn,
            f"SELECT * FROM marts.fct_weather_sensitivity WHERE region = '{region}' "
            f"AND segment = '{segment}' ORDER BY as_of_date",
        )
        return frame.set_index("as_of_date")


@pytest.fixture(scope="module")
def build(pg_resource: PostgresResource, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Build]:
    synthetic = Synthetic.make()
    target = tmp_path_factory.mktemp("dbt_weather")
    with pg_resource.connect(autocommit=True) as conn:
        load(conn, synthetic)
        results = run_dbt_build(pg_resource.get_url(), target, "--full-refresh", *SELECT)
        yield Build(synthetic, results, conn, pg_resource.get_url(), target)


def expected_fit(days: pd.DataFrame) -> dict[str, Any]:
    """statsmodels' OLS of y on the degree-days with positive values on enough days (the mart's rule)."""
    names = [n for n in ("hdd", "cdd") if (days[n] > 0).sum() >= SENSITIVITY.min_degree_days]
    fit = sm.OLS(days["y"].to_numpy(), sm.add_constant(days[names].to_numpy(), has_constant="add")).fit()
    ci = fit.conf_int(alpha=0.05)
    out: dict[str, Any] = {
        "sample_days": int(fit.nobs),
        "regressors": "+".join(names),
        "degrees_of_freedom": int(fit.df_resid),
        "r_squared": fit.rsquared,
        "residual_se_kwh": float(np.sqrt(fit.scale)),
        "intercept_kwh": fit.params[0],
        "intercept_se": fit.bse[0],
        "intercept_ci95_lower": ci[0][0],
        "intercept_ci95_upper": ci[0][1],
    }
    for i, name in enumerate(names, start=1):
        out |= {
            f"kwh_per_{name}": fit.params[i],
            f"kwh_per_{name}_se": fit.bse[i],
            f"kwh_per_{name}_ci95_lower": ci[i][0],
            f"kwh_per_{name}_ci95_upper": ci[i][1],
        }
    return out


# The decimals fct_weather_sensitivity serves its figures to (docs/weather.md): kWh and kWh per
# degree-day as the consumption marts' kWh, R^2 and t as scores, the degree-days as fct_weather_impact's.
SENSITIVITY_PLACES = {
    "mean_kwh_import_per_meter": 6,
    "mean_heating_degree_days": 4,
    "mean_cooling_degree_days": 4,
    **{
        f"{figure}{part}": 6
        for figure in ("intercept", "kwh_per_hdd", "kwh_per_cdd")
        for part in ("_se", "_ci95_lower", "_ci95_upper")
    },
    "intercept_kwh": 6,
    "kwh_per_hdd": 6,
    "kwh_per_cdd": 6,
    "r_squared": 6,
    "residual_se_kwh": 6,
    "t_critical": 6,
}


def assert_matches_fit(row: pd.Series, expected: dict[str, Any]) -> int:
    """The mart's row is statsmodels' fit, each figure to its decimals (within half its last place, or
    1e-7 of the value: the closed form and statsmodels' solver differ in the last digits). Returns how
    many of statsmodels' figures carry more decimals than that (the digits the rounding drops)."""
    assert row["fit_status"] == "fitted"
    noisy = 0
    for column, value in expected.items():
        if isinstance(value, str | int):
            assert row[column] == value, column
        else:
            n = SENSITIVITY_PLACES[column]
            assert places(row[column]) <= n, (column, row[column])
            half = 0.5 * 10.0**-n * (1 + 1e-9)
            assert float(row[column]) == pytest.approx(value, rel=1e-7, abs=half), column
            noisy += places(value) > n
    for absent in {"hdd", "cdd"} - set(expected["regressors"].split("+")):
        assert row[f"kwh_per_{absent}"] is None or pd.isna(row[f"kwh_per_{absent}"])
    return noisy


def window(days: pd.DataFrame, as_of: date) -> pd.DataFrame:
    first = as_of - timedelta(days=SENSITIVITY.window_days - 1)
    return days[(days.index >= first) & (days.index <= as_of)]


def test_build_succeeds_with_every_test_passing(build: Build) -> None:
    assert failures(build.results) == {}
    names = {r["unique_id"] for r in build.results}
    assert {"model.metrify.fct_weather_conditions", "model.metrify.fct_weather_sensitivity"} <= names
    assert any("assert_t_critical_expansion_matches_seed" in n for n in names)


def test_openstef_sensitivity_equals_an_independent_ols_on_the_same_days(build: Build) -> None:
    """Every as-of date whose window holds only whole days of the file (from 2020-11-01 on: the file
    starts on 2020-10-31 at 01:45 local time, and VEE estimates that day's first quarter-hours)."""
    days = openstef_days()
    mart = build.sensitivity(OPENSTEF_REGION, "commercial")
    assert set(mart.index) == set(days.index)  # one row per local day with consumption
    whole = days[days["whole"]]
    compared = noisy = 0
    for as_of in mart.index:
        row = mart.loc[as_of]
        if as_of - timedelta(days=SENSITIVITY.window_days - 1) < whole.index.min():
            continue
        sample = window(whole, as_of)
        noisy += assert_matches_fit(row, expected_fit(sample))
        assert row["regressors"] == "hdd"  # November: no cooling degree-day at all
        assert row["window_start_date"] == as_of - timedelta(days=SENSITIVITY.window_days - 1)
        compared += 1
    assert compared == 3
    assert noisy >= 3 * 8  # statsmodels' doubles carry more decimals than the mart serves
    # The last day holds five quarter-hours: not billing-ready, so not a sample, though it has a row.
    last = mart.loc[date(2020, 11, 30)]
    assert last["sample_days"] == SENSITIVITY.window_days - 1
    # Windows with fewer usable days than the minimum are not fitted.
    early = mart[mart["sample_days"] < SENSITIVITY.min_days]
    assert len(early) and set(early["fit_status"]) == {"too_few_days"}
    assert early["kwh_per_hdd"].isna().all()


@pytest.mark.parametrize(
    ("segment", "column", "slopes"),
    [("residential", "y", (2.5, 4.0)), ("industrial", "y_industrial", (30.0, 90.0))],
)
def test_synthetic_sensitivity_fits_each_segment_like_statsmodels(
    build: Build, segment: str, column: str, slopes: tuple[float, float]
) -> None:
    """The region's residential and industrial meters are fitted apart, each on its own energy: the
    industrial meter's 12,000 kWh a day does not enter the households' figure or slopes."""
    days = build.synthetic.days.assign(y=build.synthetic.days[column])
    mart = build.sensitivity(SYNTHETIC_REGION, segment)
    assert len(mart) == SYNTHETIC_DAYS and (mart["meter_days"] <= SYNTHETIC_DAYS).all()
    fitted = mart[mart["fit_status"] == "fitted"]
    assert len(fitted) == SYNTHETIC_DAYS - SENSITIVITY.min_days + 1
    noisy = sum(
        assert_matches_fit(fitted.loc[as_of], expected_fit(window(days, as_of))) for as_of in fitted.index
    )
    assert noisy >= 8 * len(fitted)  # statsmodels' doubles carry more decimals than the mart serves
    full = mart.loc[SYNTHETIC_START + timedelta(days=SYNTHETIC_DAYS - 1)]
    assert full["regressors"] == "hdd+cdd" and full["sample_days"] == SYNTHETIC_DAYS
    # The generating slopes (kWh per degree-day) lie inside the intervals.
    assert full["kwh_per_hdd_ci95_lower"] < slopes[0] < full["kwh_per_hdd_ci95_upper"]
    assert full["kwh_per_cdd_ci95_lower"] < slopes[1] < full["kwh_per_cdd_ci95_upper"]
    impact = query(
        build.conn,
        f"SELECT * FROM marts.fct_weather_impact WHERE region = '{SYNTHETIC_REGION}' "
        f"AND segment = '{segment}' ORDER BY local_date",
    ).set_index("local_date")
    assert (impact["meter_count"] == 1).all()
    np.testing.assert_allclose(impact["kwh_import_per_meter"].astype(float), days["y"], rtol=1e-9)


def test_sensitivity_is_served_to_the_decimals_of_its_units(build: Build) -> None:
    """The coefficients were served to every digit of a double (the synthetic residential fit of
    2021-04-26: kwh_per_hdd 2.675659879087632, r_squared 0.8952843212965457, mean HDD
    1.608076923076923). Every figure of every row, fitted or not, carries at most its decimals
    (SENSITIVITY_PLACES): 2.67566, 0.895284, 1.6081."""
    mart = query(build.conn, "SELECT * FROM marts.fct_weather_sensitivity")
    floats = query(
        build.conn,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' "
        "AND table_name = 'fct_weather_sensitivity' AND data_type = 'double precision'",
    )
    assert set(floats["column_name"]) == set(SENSITIVITY_PLACES)
    for column, n in SENSITIVITY_PLACES.items():
        values = mart[column].dropna().astype(float)
        assert len(values) > 0 and all(places(v) <= n for v in values), column


def expected_conditions() -> pd.DataFrame:
    rows = []
    specs = [([obs], classes) for obs, classes in EDGE_HOURS] + MIXED_HOURS
    for hour, (observations, classes) in enumerate(specs):
        temperature, wind, rain = (np.array(v, dtype=float) for v in zip(*observations, strict=True))
        rows.append(
            {
                "hour_start_utc": (EDGE_DAY + timedelta(hours=hour)).replace(tzinfo=None),
                "observation_count": len(observations),
                "mean_temperature_c": temperature.mean(),
                "min_temperature_c": temperature.min(),
                "max_wind_speed_ms": wind.max(),
                "precipitation_mm": rain.sum(),
                "classes": classes,
            }
        )
    return pd.DataFrame(rows)


def test_conditions_classify_every_edge(build: Build) -> None:
    actual = query(
        build.conn,
        f"SELECT * FROM marts.fct_weather_conditions WHERE station_id = '{EDGE_STATION}' ORDER BY hour_start_utc",
    )
    expected = expected_conditions()
    assert actual["hour_start_utc"].tolist() == expected["hour_start_utc"].tolist()
    for (_, row), (_, want) in zip(actual.iterrows(), expected.iterrows(), strict=True):
        got = (
            row["temperature_band"],
            row["wind_class"],
            row["precipitation_class"],
            row["is_frost"],
            row["is_heat"],
            row["is_gale"],
            row["is_heavy_rain"],
        )
        assert got == want["classes"], row["hour_start_utc"]
        assert row["is_extreme_weather"] == any(want["classes"][3:])
        assert row["observation_count"] == want["observation_count"]
        for column in ("mean_temperature_c", "min_temperature_c", "max_wind_speed_ms", "precipitation_mm"):
            assert row[column] == pytest.approx(want[column], abs=1e-12), column


def test_conditions_of_a_station_that_misses_measures(build: Build) -> None:
    """Observations stored with a null humidity, pressure, wind or precipitation build (every dbt test
    passes, test_build_succeeds_with_every_test_passing): each hour's figures are over the
    observations that report the measure, its class unknown when none does."""
    actual = query(
        build.conn,
        f"SELECT * FROM marts.fct_weather_conditions WHERE station_id = '{GAP_STATION}' ORDER BY hour_start_utc",
    )
    assert actual["observation_count"].tolist() == [len(observations) for observations, _ in GAP_HOURS]
    for (_, row), (observations, want) in zip(actual.iterrows(), GAP_HOURS, strict=True):
        band, wind, rain, frost, gale, heavy, humidity, mean_wind, precipitation = want
        got = (row["temperature_band"], row["wind_class"], row["precipitation_class"])
        assert got == (band, wind, rain), row["hour_start_utc"]
        assert (row["is_frost"], row["is_gale"], row["is_heavy_rain"]) == (frost, gale, heavy)
        assert row["is_extreme_weather"] == (frost or gale or heavy)
        temperatures = [o[0] for o in observations]
        assert row["mean_temperature_c"] == pytest.approx(sum(temperatures) / len(temperatures))
        for column, value in (
            ("mean_humidity_pct", humidity),
            ("mean_wind_speed_ms", mean_wind),
            ("max_wind_speed_ms", mean_wind),
            ("precipitation_mm", precipitation),
        ):
            if value is None:
                assert row[column] is None or pd.isna(row[column]), (row["hour_start_utc"], column)
            else:
                assert row[column] == pytest.approx(value), (row["hour_start_utc"], column)


def test_openstef_conditions_aggregate_the_quarter_hours(build: Build) -> None:
    """The preset's observations per UTC hour: four quarter-hours, rain (mm/h) x 0.25 summed."""
    raw = pd.read_csv(OPENSTEF)
    stamps = pd.to_datetime(raw.iloc[:, 0], utc=True)
    hours = (
        pd.DataFrame(
            {"hour": stamps.dt.floor("h").dt.tz_localize(None), "t": raw["temp"], "rain": raw["rain"]}
        )
        .groupby("hour")
        .agg(n=("t", "size"), t=("t", "mean"), rain=("rain", "mean"))
    )
    actual = query(
        build.conn, "SELECT * FROM marts.fct_weather_conditions WHERE station_id = 'OPENSTEF-307'"
    ).set_index("hour_start_utc")
    assert len(actual) == len(hours)
    merged = hours.join(actual)
    assert (merged["observation_count"] == merged["n"]).all()
    # The file's temperatures carry 8 decimals, their means in doubles more (13.0577392575 and noise):
    # served to 4 decimals (macros/math.sql `unit_places`), within half the last place.
    assert sum(len(repr(float(t)).partition(".")[2]) > 4 for t in merged["t"]) > 500
    served = merged["mean_temperature_c"].astype(float)
    assert all(len(repr(float(t)).partition(".")[2]) <= 4 for t in served)
    np.testing.assert_allclose(served, [to_places(t, 4) for t in merged["t"]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(served, merged["t"], rtol=0, atol=5e-5 + 1e-12)
    whole = merged[merged["n"] == 4]  # a whole hour's total equals its mean rate
    np.testing.assert_allclose(whole["precipitation_mm"].astype(float), whole["rain"], rtol=1e-12, atol=1e-12)
    assert set(actual["temperature_band"]) <= {"freezing", "cold", "mild"}  # -1.5 .. 17 C in November
    assert actual["is_frost"].any() and not actual["is_heat"].any()


# The rows of this module's data set (fakesnow's RAW schema may still hold other modules' rows).
OURS = (
    (
        "fct_weather_sensitivity",
        ["region", "segment", "as_of_date"],
        f"region IN ('{OPENSTEF_REGION}', '{SYNTHETIC_REGION}')",
    ),
    (
        "fct_weather_conditions",
        ["station_id", "hour_start_utc"],
        f"station_id IN ('OPENSTEF-307', 'WX-SYN', '{EDGE_STATION}', '{GAP_STATION}')",
    ),
)


@pytest.mark.snowflake
def test_snowflake_builds_the_same_marts(
    build: Build, snowflake_server: dict[str, Any], pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """The same `ops` copied to Snowflake's RAW schema (`warehouse_load`), the weather marts built there:
    the cross-database SQL gives PostgreSQL's values. A database of its own: the server is shared with
    tests/warehouse/test_snowflake.py, whose RAW rows the incremental copy would otherwise keep."""
    env = {**snowflake_env(snowflake_server), "METRIFY_SNOWFLAKE_DATABASE": "METRIFY_WEATHER"}
    with environment(env):
        snowflake = snowflake_resource(resolve_snowflake(env))
        assert dg.materialize(
            [warehouse_load], resources={"postgres": pg_resource, "snowflake": snowflake}
        ).success
        results = dbt_build(dict(os.environ), tmp_path, "--full-refresh", *SELECT)
        assert failures(results) == {}
        with snowflake.get_connection() as conn:
            cur = conn.cursor()
            frames = {}
            for mart, key, where in OURS:
                cur.execute(f"SELECT * FROM marts.{mart} WHERE {where}")
                columns = [c[0].lower() for c in cur.description]
                frames[mart] = (
                    pd.DataFrame(cur.fetchall(), columns=columns).sort_values(key).reset_index(drop=True)
                )
    for mart, key, where in OURS:
        pg = (
            query(build.conn, f"SELECT * FROM marts.{mart} WHERE {where}")
            .sort_values(key)
            .reset_index(drop=True)
        )
        sf = frames[mart][pg.columns]
        assert len(pg) > 50 and len(sf) == len(pg), mart
        for column in pg.columns:
            if column in SENSITIVITY_PLACES:  # rounded by the same macro: equal, not close
                assert sf[column].astype(float).equals(pg[column].astype(float)), f"{mart}.{column}"
            elif pd.api.types.is_numeric_dtype(pg[column]) and not pd.api.types.is_bool_dtype(pg[column]):
                np.testing.assert_allclose(
                    sf[column].astype(float),
                    pg[column].astype(float),
                    rtol=1e-9,
                    atol=1e-9,
                    err_msg=f"{mart}.{column}",
                )
            else:
                assert sf[column].tolist() == pg[column].tolist(), f"{mart}.{column}"


def test_partitioned_run_rebuilds_every_window_that_holds_its_days(build: Build) -> None:
    """Runs after the others: a run over one day rebuilds the as-of dates whose window holds it or a
    local day either side, which its UTC day of weather reaches (day - 1 .. day + window), and that
    UTC day's weather hours, and nothing else."""
    day = date(2020, 11, 15)
    before = build.sensitivity(OPENSTEF_REGION, "commercial")
    hours_before = query(build.conn, "SELECT count(*) AS n FROM marts.fct_weather_conditions")["n"].item()
    with build.conn.cursor() as cur:
        cur.execute(
            "UPDATE marts.fct_weather_sensitivity SET meter_days = -1 WHERE region = %s", (OPENSTEF_REGION,)
        )
        cur.execute(
            "DELETE FROM marts.fct_weather_conditions WHERE station_id = 'OPENSTEF-307' "
            "AND hour_start_utc >= %s AND hour_start_utc < %s",
            (day, day + timedelta(days=1)),
        )
        assert cur.rowcount == 24
    partition = json.dumps({"min_date": day.isoformat(), "max_date": day.isoformat()})
    results = run_dbt_build(build.url, build.target, "--vars", partition, *SELECT)
    assert failures(results) == {}
    after = build.sensitivity(OPENSTEF_REGION, "commercial")
    rebuilt = (after.index >= day - timedelta(days=1)) & (
        after.index <= day + timedelta(days=SENSITIVITY.window_days)
    )
    assert (after.loc[~rebuilt, "meter_days"] == -1).all() and (~rebuilt).sum() == 14
    pd.testing.assert_frame_equal(after.loc[rebuilt], before.loc[rebuilt])
    assert (
        query(build.conn, "SELECT count(*) AS n FROM marts.fct_weather_conditions")["n"].item()
        == hours_before
    )


def test_partitioned_run_leaves_the_windows_of_the_local_days_its_weather_reaches_as_a_full_build(
    build: Build,
) -> None:
    """Runs last (it changes `ops`): a UTC day of weather reaches the local days either side of it
    (Amsterdam's 00:00-01:00 of 2020-11-02 is 23:00-24:00 UTC of 11-01), which `fct_weather_impact`
    rebuilds; the as-of dates whose windows hold those days must be rebuilt too. A run over 11-01
    rebuilt 11-01 .. 11-28 and left 11-29, whose window starts on 11-02, on the old temperatures."""
    day = date(2020, 11, 1)
    with build.conn.cursor() as cur:
        cur.execute(
            "UPDATE ops.weather_observations SET temperature_c = temperature_c - 10 "
            "WHERE station_id = 'OPENSTEF-307' AND observed_at >= %s AND observed_at < %s",
            (datetime(2020, 11, 1, 23, tzinfo=UTC), datetime(2020, 11, 2, tzinfo=UTC)),
        )
        assert cur.rowcount == 4
    partition = json.dumps({"min_date": day.isoformat(), "max_date": day.isoformat()})
    assert failures(run_dbt_build(build.url, build.target, "--vars", partition, *SELECT)) == {}
    partitioned = build.sensitivity(OPENSTEF_REGION, "commercial")
    assert failures(run_dbt_build(build.url, build.target, *SELECT)) == {}  # every as-of date again
    full = build.sensitivity(OPENSTEF_REGION, "commercial")
    moved = (full["mean_heating_degree_days"] - partitioned["mean_heating_degree_days"]).abs() > 1e-9
    assert list(full.index[moved]) == []
    window_of_the_2nd = full.loc[date(2020, 11, 2) + timedelta(days=SENSITIVITY.window_days - 1)]
    assert window_of_the_2nd["window_start_date"] == date(2020, 11, 2)
