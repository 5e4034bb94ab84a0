"""`metrify forecast backtest` on the OpenSTEF file: every method scored, as the library scores them,
and a clear error for an empty range; `metrify forecast show` says what chose each series' method."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.forecasting import backtest as bt
from metrify_assets.forecasting.assets import actual_rows, backtest_rows, forecast_rows
from metrify_assets.forecasting.openstef import openstef_series
from metrify_assets.forecasting.run import SeriesForecast, forecast_series
from metrify_assets.forecasting.writes import write_actuals, write_forecasts
from metrify_assets.resources import PostgresResource
from tests.forecasting.synthetic import synthetic

SAMPLE = Path(__file__).parents[1] / "fixtures" / "openstef_307_test.csv"


def test_backtest_of_an_openstef_file_scores_every_method_as_the_library_does() -> None:
    args = ["forecast", "backtest", "--openstef", str(SAMPLE), "--window-days", "21", "--json"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = {row["method"]: row for row in json.loads(result.stdout.strip().splitlines()[-1])}
    assert set(summary) == set(bt.METHODS)
    # default range: the 7 days up to the file's last complete local day
    days = [date(2020, 11, 23) + timedelta(days=d) for d in range(7)]
    expected = bt.evaluate(bt.backtest(openstef_series(SAMPLE), days, 21)).set_index("method")
    for method, row in summary.items():
        assert row["n"] == 7 * 96
        assert np.isclose(row["mae"], expected.loc[method, "mae"])


def test_a_first_day_after_the_last_is_refused() -> None:
    args = [
        "forecast",
        "backtest",
        "--openstef",
        str(SAMPLE),
        "--first",
        "2020-11-29",
        "--last",
        "2020-11-20",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--first 2020-11-29 is after --last 2020-11-20" in result.output


def test_a_day_that_is_no_date_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["forecast", "show", "--day", "garbage"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "Invalid value for '--day'" in result.output


def store(conn: psycopg.Connection, region: str, result: SeriesForecast) -> None:
    """What the forecast asset stores of one series: its forecast, its backtest and its actuals."""
    versions = dict.fromkeys(bt.METHODS, "v1")
    write_forecasts(
        conn,
        forecast_rows(result, region, "residential", versions),
        backtest_rows(result, region, "residential", versions),
    )
    for day in result.series.local_days():
        write_actuals(conn, actual_rows({(region, "residential"): result.series}, day))


@pytest.mark.postgres
def test_forecast_show_says_whether_the_backtest_or_a_default_chose_the_method(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """It showed a two-day series' persistence with its one-method MAE as "the backtest MAE behind the
    choice", when nothing had been compared with it."""
    day = date(2026, 1, 13)
    young = forecast_series(synthetic(days=2, start="2026-01-11"), day, window_days=21)
    grown = forecast_series(synthetic(days=8), day, window_days=21)  # COMPARE_DAYS: the baselines compared
    assert not bt.compared(young.summary) and bt.compared(grown.summary)
    store(pg, "north", young)
    store(pg, "south", grown)
    # The one reading that show and the demo's summary share: a series with no backtest is a default too.
    series = [("north", "residential"), ("south", "residential"), ("west", "residential")]
    assert [n for _, n in bt.stored(pg, day, series)] == [2, None, 0]
    env = {"METRIFY_HOME": str(tmp_path), "METRIFY_POSTGRES_URL": pg_resource.get_url()}
    result = CliRunner().invoke(app, ["forecast", "show", "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    north, south = json.loads(result.stdout.strip().splitlines()[-1])
    assert north["method"] == "persistence" and north["by_default"] is True
    assert north["history_days"] == 2 and north["backtest_methods"] == 1
    assert north["why"] == young.basis  # the words of the asset's metadata, from the stored tables
    assert north["why"] == "no backtest to choose by yet: 2 days of history, 8 needed; persistence by default"
    assert north["backtest_mae_kwh"] is None  # persistence's MAE backed no choice
    assert south["method"] == grown.winner and south["by_default"] is False and south["history_days"] is None
    assert south["why"] == grown.basis == "lowest backtest MAE of 3 methods over 7 days"
    assert south["backtest_methods"] == 3
    mae = grown.summary.set_index("method").loc[grown.winner, "mae"]
    assert np.isclose(south["backtest_mae_kwh"], mae)
    table = CliRunner().invoke(app, ["forecast", "show"], env=env, terminal_width=300)
    assert table.exit_code == 0, table.output
    (north_line,) = [line for line in table.stdout.splitlines() if "north" in line]
    assert "persistence by default" in north_line and "chosen by" in table.stdout
    (south_line,) = [line for line in table.stdout.splitlines() if "south" in line]
    assert f"{mae:,.1f}" in south_line and "lowest backtest MAE of 3 methods over 7 days" in south_line
