"""`metrify forecast backtest` on the OpenSTEF file: every method scored, as the library scores them,
and a clear error for an empty range."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.forecasting import backtest as bt
from metrify_assets.forecasting.openstef import openstef_series

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
