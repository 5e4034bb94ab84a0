"""`metrify demo` refuses impossible arguments as usage errors, before it simulates anything; its
summary table says what the numbers mean."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

import psycopg
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from metrify_assets.cli.demo import DemoSummary, _print_summary, remember_grid_area
from metrify_assets.cli.main import app
from metrify_assets.env import HOME_SETTINGS_FILE, resolve_settings
from metrify_assets.grid.area_history import judged_under_another


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--meters", "0"], "--meters"),
        (["--days", "-1"], "--days"),
        (["--start", "garbage"], "--start"),
        (["--fault-rate", "0.9"], "--fault-rate"),
    ],
)
def test_a_bad_argument_is_a_usage_error_not_a_traceback(args: list[str], option: str) -> None:
    result = CliRunner().invoke(app, ["demo", *args])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # click's usage error, not a ValueError
    assert f"Invalid value for '{option}'" in result.output


def summary_text(forecast: dict[str, object]) -> str:
    summary = DemoSummary(
        input_records=10, accepted=10, quarantined=0, flagged=0, anomalies=0, quality_score=None,
        marts={}, report_path="report.html", batches=1, forecast=forecast,
    )  # fmt: skip
    out = io.StringIO()
    _print_summary(Console(file=out, width=200), summary)
    return out.getvalue()


def test_the_summary_says_a_forecast_method_was_chosen_by_default() -> None:
    """'chosen methods: persistence' read as a backtest's verdict on two days of data."""
    forecast: dict[str, object] = {
        "day": "2026-03-30", "series": 16, "methods": ["persistence"], "by_default": 16, "history_days": 2,
        "p10_kwh": None, "p50_kwh": 1000.0, "p90_kwh": None,
    }  # fmt: skip
    text = summary_text(forecast)
    assert "chosen methods: persistence" in text
    assert "by default in 16 of 16 series: no backtest to choose by yet (2 days of history, 8 needed)" in text
    assert "by default" not in summary_text({**forecast, "methods": ["model"], "by_default": 0})


def test_the_demo_home_remembers_its_grid_area_below_the_environment(tmp_path: Path) -> None:
    """The trial: the demo's data needed METRIFY_GRID_AREA=great_britain on every later command. The demo
    keeps its area in its home's settings file, which `resolve_settings` reads below the environment; a
    home set up for another area is refused rather than given a second network's data."""
    home = tmp_path / "home"
    env = {"METRIFY_HOME": str(home)}
    assert (resolve_settings(env).grid_area, resolve_settings(env).grid_area_from) == (None, None)
    out = io.StringIO()
    remember_grid_area(Console(file=out, width=200), resolve_settings(env), "great_britain")
    assert json.loads((home / HOME_SETTINGS_FILE).read_text()) == {"METRIFY_GRID_AREA": "great_britain"}
    remembered = resolve_settings(env)
    assert (remembered.grid_area, remembered.grid_area_from) == (
        "great_britain",
        str(home / HOME_SETTINGS_FILE),
    )
    assert "warning" not in out.getvalue()
    # the environment is above the home: said when the demo runs under another area
    overridden = {**env, "METRIFY_GRID_AREA": "continental_europe"}
    assert (resolve_settings(overridden).grid_area, resolve_settings(overridden).grid_area_from) == (
        "continental_europe",
        "METRIFY_GRID_AREA",
    )
    remember_grid_area(Console(file=out, width=200), resolve_settings(overridden), "great_britain")
    assert "METRIFY_GRID_AREA=continental_europe in this environment overrides it" in out.getvalue()
    with pytest.raises(typer.BadParameter, match="set up for the grid area great_britain"):
        remember_grid_area(Console(file=io.StringIO()), resolve_settings(env), "nordic")
    # A home whose database holds another network's judged hours is refused too, settings file or not.
    bare = {"METRIFY_HOME": str(tmp_path / "bare")}
    with pytest.raises(typer.BadParameter, match="grid hours judged under continental_europe"):
        remember_grid_area(
            Console(file=io.StringIO()),
            resolve_settings(bare),
            "great_britain",
            ("continental_europe", date(2026, 3, 1)),
        )
    assert not (tmp_path / "bare" / HOME_SETTINGS_FILE).exists()
    (home / HOME_SETTINGS_FILE).write_text('{"METRIFY_POSTGRES_URL": "postgresql://elsewhere"}')
    with pytest.raises(ValueError, match="METRIFY_POSTGRES_URL cannot be kept in a home's settings"):
        resolve_settings(env)


@pytest.mark.postgres
def test_hours_judged_under_another_area_are_found_by_the_first_one(pg: psycopg.Connection) -> None:
    """What `metrify demo` asks a home's database before it remembers its area (in a transaction rolled
    back: the test database holds other files' grid hours)."""
    with pg.transaction(force_rollback=True):
        pg.execute("DELETE FROM ops.grid_stability")
        assert judged_under_another(pg, "great_britain") is None
        given = {"grid_node_id": "DEMO-AREA-1", "hour_start": "2031-02-03 04:00+00", "day": "2031-02-03"}
        given |= {"area": "nordic", "worst_state": "normal"}
        columns = pg.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'ops' "
            "AND table_name = 'grid_stability' AND is_nullable = 'NO' AND column_default IS NULL"
        ).fetchall()
        values = {
            name: given.get(name, "x" if kind == "text" else False if kind == "boolean" else 0)
            for name, kind in columns
        }
        pg.execute(
            f"INSERT INTO ops.grid_stability ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))})",
            list(values.values()),
        )
        assert judged_under_another(pg, "great_britain") == ("nordic", date(2031, 2, 3))
        assert judged_under_another(pg, "nordic") is None
