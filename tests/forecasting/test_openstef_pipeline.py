"""The OpenSTEF location through the pipeline: its load as a meter (feed-in as `export` readings) and
its weather as the meter's station, in `ops` on a real PostgreSQL; VEE builds the billing-grade
series; `load_forecast` forecasts 2020-11-29 from the 21 days before it and backtests the 7 days
before that. The forecast the pipeline stores is the one the library makes from the fixture file,
and the model is versioned in the lake (on moto's S3) with its backtest.

The records go into `ops` directly, not through `metrify run`: the location's intervals exceed the
record rule `energy_implausible`'s bound for one meter (docs/ingest-mapping.md, known limit)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from metrify_assets.forecasting.assets import load_forecast
from metrify_assets.forecasting.inputs import read_series
from metrify_assets.forecasting.openstef import COUNTRY, openstef_series
from metrify_assets.forecasting.run import forecast_series
from metrify_assets.forecasting.series import day_origin
from metrify_assets.resources import LakeResource, PostgresResource
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.migrate import truncate_ops
from tests.warehouse.test_dbt_build import insert
from tests.warehouse.test_weather_marts import OPENSTEF, preset_frame, vee_openstef

pytestmark = pytest.mark.postgres
REGISTRY = pd.DataFrame(
    {
        "meter_id": ["OPENSTEF-307"],
        "segment": ["commercial"],
        "region": ["openstef-307"],
        "weather_station_id": ["OPENSTEF-307"],
        "timezone": ["Europe/Amsterdam"],
    }
)
DAY = date(2020, 11, 29)  # the fixture's last complete local day
CONFIG = {"window_days": 21, "backtest_days": 7, "holiday_country": COUNTRY, "workers": 1}
LAKE = "s3://metrify-lake/forecast-test"


@pytest.fixture(scope="module")
def materialised(pg_resource: PostgresResource, s3_endpoint: str) -> dg.ExecuteInProcessResult:
    with pg_resource.connect(autocommit=True) as conn:
        truncate_ops(conn)
        insert(conn, "meters", REGISTRY, {})
        insert(
            conn, "meter_readings", preset_frame("meter_readings"), {"record_version": 1, "batch_id": "os"}
        )
        weather = preset_frame("weather_observations")
        insert(conn, "weather_observations", weather, {"record_version": 1, "batch_id": "os"})
        vee_openstef(conn)
    result = dg.materialize(
        [load_forecast],
        resources={"postgres": pg_resource, "lake": LakeResource(url=LAKE)},
        partition_key="2020-11-28",
        run_config={"ops": {"load_forecast": {"config": CONFIG}}},
    )
    assert result.success
    return result


def stored(pg_resource: PostgresResource, sql: str) -> pd.DataFrame:
    with pg_resource.connect() as conn, conn.cursor() as cur:
        cur.execute(sql)
        assert cur.description is not None
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def test_the_pipeline_forecasts_the_location_as_the_library_does(
    materialised: dg.ExecuteInProcessResult,
    pg_resource: PostgresResource,
    record_property: Callable[[str, object], None],
) -> None:
    # the series the run reads (from 2020-11-01: the window and the backtest's days) is the file's
    # net load and temperature, to the float rounding of the preset's kWh
    whole = openstef_series(OPENSTEF)
    read = replace(whole, load=whole.load[whole.load.index >= day_origin(date(2020, 11, 1), whole.timezone)])
    with pg_resource.connect() as conn:
        (series,) = read_series(conn, date(2020, 11, 1), date(2020, 11, 28), COUNTRY).values()
    known = read.load[read.load.index < day_origin(DAY, read.timezone)]
    pd.testing.assert_series_equal(series.load, known, check_names=False, check_freq=False, atol=1e-6)
    span = series.temperature.index.intersection(read.temperature.index)
    assert span[0] <= known.index[0] and span[-1] >= day_origin(DAY + timedelta(days=1), read.timezone)
    pd.testing.assert_series_equal(
        series.temperature[span], read.temperature[span], check_names=False, check_freq=False
    )
    # what the run stored is the library's forecast of that series
    expected = forecast_series(series, DAY, window_days=21, backtest_days=7)
    forecasts = stored(pg_resource, "SELECT * FROM ops.load_forecasts ORDER BY method, reading_start")
    assert set(forecasts["local_date"]) == {DAY} and set(forecasts["issued_for"]) == {date(2020, 11, 28)}
    assert (forecasts["region"] == "openstef-307").all() and len(forecasts) == 4 * 96
    mine = expected.forecast.forecasts.sort_values(["method", "reading_start"]).reset_index(drop=True)
    assert list(forecasts["method"]) == list(mine["method"])
    for column in ("p10", "p50", "p90"):
        assert np.allclose(
            forecasts[f"{column}_kwh"].to_numpy(dtype=float), mine[column], rtol=1e-9, atol=1e-9
        ), column
    chosen = set(forecasts.loc[forecasts["selected"], "method"])
    assert chosen == {expected.winner}
    backtests = stored(pg_resource, "SELECT * FROM ops.load_forecast_backtests ORDER BY method").set_index(
        "method"
    )
    summary = expected.summary.set_index("method").loc[backtests.index]
    assert (backtests["origins"] == 7).all() and (backtests["intervals"] == summary["n"]).all()
    assert np.allclose(backtests["mae_kwh"], summary["mae"]) and np.allclose(
        backtests["coverage"], summary["coverage"]
    )
    for method, row in backtests.iterrows():
        record_property(f"{method}_mae_kwh", round(float(row["mae_kwh"]), 1))
    record_property("winner", expected.winner)


def test_the_model_is_versioned_in_the_lake_with_its_backtest(
    materialised: dg.ExecuteInProcessResult, pg_resource: PostgresResource
) -> None:
    (event,) = materialised.asset_materializations_for_node("load_forecast")
    assert event.metadata["series_days"].value == 1
    assert "data:image/png;base64," in str(event.metadata["chart"].value)  # the day, drawn for the UI
    lake = Lake(LAKE)
    prefix = f"models/load_forecast/{DAY.isoformat()}/openstef-307/commercial"
    info = json.loads(lake.get(f"{prefix}/model.json"))
    assert info["trained_from"] == "2020-11-08" and info["trained_to"] == "2020-11-28"
    assert info["holiday_country"] == "NL" and info["timezone"] == "Europe/Amsterdam"
    assert {row["method"] for row in info["backtest"]} == {
        "model",
        "seasonal_naive",
        "weekday_mean",
        "persistence",
    }
    assert info["model_fitted"] and lake.exists(info["model_key"])
    # each method's rows carry its own kind: a baseline's never name the model
    kinds = {
        "model": "hgb-quantile-v1",
        **{m: f"{m}-v1" for m in ("seasonal_naive", "weekday_mean", "persistence")},
    }
    assert set(info["versions"]) == set(kinds) and info["version"] == info["versions"][info["winner"]]
    for method, version in info["versions"].items():
        assert version.startswith(f"{kinds[method]}@{DAY.isoformat()}-"), method
    stored_versions = stored(
        pg_resource,
        "SELECT DISTINCT 'f' AS t, method, model_version FROM ops.load_forecasts UNION "
        "SELECT DISTINCT 'b', method, model_version FROM ops.load_forecast_backtests",
    )
    assert len(stored_versions) == 8
    assert all(info["versions"][m] == v for m, v in stored_versions[["method", "model_version"]].values)


def test_the_file_forecast_agrees_with_the_pipelines_to_the_rounding_a_tree_model_amplifies(
    materialised: dg.ExecuteInProcessResult, pg_resource: PostgresResource
) -> None:
    """Gradient-boosted trees split at data values, so the preset's 1e-6 kWh rounding moves the model's
    P50 by a few per cent; the baselines do not move and the backtest's MAE stays within 5 %."""
    whole = openstef_series(OPENSTEF)
    read = replace(whole, load=whole.load[whole.load.index >= day_origin(date(2020, 11, 1), whole.timezone)])
    from_file = forecast_series(read, DAY, window_days=21, backtest_days=7)
    backtests = stored(pg_resource, "SELECT method, mae_kwh FROM ops.load_forecast_backtests").set_index(
        "method"
    )
    file_mae = from_file.summary.set_index("method")["mae"]
    assert np.allclose(backtests["mae_kwh"], file_mae[backtests.index], rtol=0.05)
    forecasts = stored(
        pg_resource, "SELECT * FROM ops.load_forecasts WHERE method <> 'model' ORDER BY method, reading_start"
    )
    mine = from_file.forecast.forecasts
    mine = mine[mine["method"] != "model"].sort_values(["method", "reading_start"])
    assert np.allclose(forecasts["p50_kwh"].to_numpy(dtype=float), mine["p50"], atol=1e-5)
