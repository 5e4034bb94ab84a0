"""A sparse or gappy series gives a forecast or a named skip, never a crash: the trial's 2026-04-01
(one accepted reading that day, the two days before it gone) crashed `load_forecast` drawing its chart,
as a series no method could forecast made an untyped empty frame that turned every series' P10/P90
into objects (numpy's isfinite refuses them). Pure functions, no Dagster instance, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd

from metrify_assets.forecasting import backtest as bt
from metrify_assets.forecasting.assets import NOT_SCORED, forecast_rows, skipped_table, winners_table
from metrify_assets.forecasting.charts import forecast_chart_png
from metrify_assets.forecasting.run import SeriesForecast, forecast_series
from metrify_assets.forecasting.series import LoadSeries
from tests.forecasting.synthetic import synthetic

HISTORY = ["2026-03-28", "2026-03-29"]  # the load the trial still had
SPARSE_READING = pd.Timestamp("2026-04-01 10:00", tz="UTC")  # the one reading of 2026-04-01
FORECAST_DAY = date(2026, 4, 2)


def _series(one_reading: bool, seed: int = 7) -> LoadSeries:
    """Two whole days of load, nothing on 03-30 and 03-31, and (`one_reading`) one quarter-hour of 04-01,
    on the grid as inputs.read_series gives it (NaN between)."""
    full = synthetic(days=6, start="2026-03-27", seed=seed)
    days = full.load.index.normalize()
    load = full.load[days.isin(pd.DatetimeIndex(HISTORY, tz="UTC"))]
    if one_reading:
        load = pd.concat([load, pd.Series([3.0], index=[SPARSE_READING])])
    grid = pd.date_range(load.index.min(), load.index.max(), freq="15min")
    return replace(full, load=load.reindex(grid))


def _versions(result: SeriesForecast) -> dict[str, str]:
    return {m: f"{m}-v1@test" for m in bt.METHODS}


def test_a_series_with_one_reading_yesterday_is_forecast_where_it_can_be() -> None:
    result = forecast_series(_series(one_reading=True), FORECAST_DAY, window_days=56, backtest_days=7)
    assert result.skipped is None and result.winner == "persistence"
    assert result.selected["p50"].notna().sum() == 1 and result.unforecast == 95
    assert all(result.forecast.forecasts[q].dtype == np.float64 for q in ("p10", "p50", "p90"))


def test_a_series_no_method_can_forecast_is_skipped_with_the_reason() -> None:
    result = forecast_series(_series(one_reading=False), FORECAST_DAY, window_days=56, backtest_days=7)
    assert result.forecast.forecasts.empty and result.forecast.model is None
    assert len(result.summary) == 1  # the backtest still scored persistence on 03-29
    assert result.skipped is not None and result.unforecast == 96
    assert "no load on 2026-04-01 (persistence)" in result.skipped
    assert "2026-03-26 .. 2026-03-05" in result.skipped and "last load on 2026-03-29" in result.skipped
    # typed like a day's forecasts, so other series' rows keep float quantiles beside it
    forecasts = result.forecast.forecasts
    assert list(forecasts.columns[:7]) == bt.FORECAST_COLUMNS
    assert all(forecasts[q].dtype == np.float64 for q in ("p10", "p50", "p90"))
    table = winners_table([("north", "industrial", result)])
    assert table.loc[0, "chosen"] == NOT_SCORED and table.loc[0, "why"] == result.skipped
    skipped = skipped_table([("north", "industrial", result)])
    assert skipped.to_dict("records") == [
        {"region": "north", "segment": "industrial", "day": "2026-04-02", "why": result.skipped}
    ]


def test_the_chart_of_a_run_with_a_skipped_and_a_sparse_series_is_drawn() -> None:
    """The trial's crash: the sparse series' rows beside a skipped series' (no rows) drawn as the asset
    draws them."""
    made = {
        ("north", "commercial"): forecast_series(
            _series(True), FORECAST_DAY, window_days=56, backtest_days=7
        ),
        ("north", "industrial"): forecast_series(
            _series(False, 3), FORECAST_DAY, window_days=56, backtest_days=7
        ),
    }
    rows = pd.concat(
        [forecast_rows(r, region, segment, _versions(r)) for (region, segment), r in made.items()],
        ignore_index=True,
    )
    assert all(rows[q].dtype == np.float64 for q in ("p10_kwh", "p50_kwh", "p90_kwh"))
    selected = rows[rows["selected"]]
    assert len(selected) == 96 and forecast_chart_png(selected).startswith(b"\x89PNG")
    assert skipped_table([(*k, r) for k, r in made.items()])["segment"].tolist() == ["industrial"]


def test_the_chart_takes_nulls_of_object_dtype() -> None:
    stamps = pd.date_range("2026-04-02", periods=4, freq="15min", tz="UTC")
    rows = pd.DataFrame(
        {
            "region": "north",
            "segment": "commercial",
            "local_date": date(2026, 4, 2),
            "horizon_hour": 0,
            "reading_start": stamps,
            "method": "persistence",
            "p10_kwh": pd.Series([None, np.nan, 1.0, 1.5], dtype=object),
            "p50_kwh": pd.Series([None, 2.0, 2.0, np.nan], dtype=object),
            "p90_kwh": pd.Series([None, None, 3.0, 3.5], dtype=object),
        }
    )
    assert forecast_chart_png(rows).startswith(b"\x89PNG")


def test_a_backtest_without_origins_is_typed() -> None:
    frame = bt.backtest(synthetic(days=2), [])
    assert frame.empty and frame["p50"].dtype == np.float64 and frame["actual"].dtype == np.float64
