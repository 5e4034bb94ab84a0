"""Load forecasts: show the newest, and backtest every method.

`metrify forecast show`: the load forecasts the nightly job made; `backtest`: rolling-origin backtests
of every method on the VEE series or on an OpenSTEF file, as docs/forecasting.md says.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from metrify_assets.cli.console import command_console
from metrify_assets.cli.db import connect, note_embedded_server
from metrify_assets.env import resolve_settings

if TYPE_CHECKING:
    import pandas as pd

    from metrify_assets.forecasting.series import LoadSeries

ISO_DAY = ["%Y-%m-%d"]

SHOW_SQL = """
SELECT f.region, f.segment, f.method, count(*) AS intervals, sum(f.p10_kwh) AS p10_kwh,
       sum(f.p50_kwh) AS p50_kwh, sum(f.p90_kwh) AS p90_kwh, sum(a.energy_kwh) AS actual_kwh,
       count(a.energy_kwh) AS actual_intervals, min(b.mae_kwh) AS backtest_mae_kwh,
       min(f.model_version) AS model_version
FROM ops.load_forecasts f
LEFT JOIN ops.load_actuals a
    ON a.region = f.region AND a.segment = f.segment AND a.reading_start = f.reading_start
LEFT JOIN ops.load_forecast_backtests b
    ON b.region = f.region AND b.segment = f.segment AND b.local_date = f.local_date AND b.method = f.method
WHERE f.selected AND f.local_date = %(day)s
GROUP BY 1, 2, 3 ORDER BY 1, 2
"""
forecast_app = typer.Typer(
    help="Load forecasts: show the newest, backtest the methods.", no_args_is_help=True
)


def _kwh(value: Any) -> str:
    import pandas as pd

    return "" if value is None or pd.isna(value) else f"{float(value):,.1f}"


def summary_table(summary: pd.DataFrame, wins: dict[str, int], title: str) -> Table:
    """Per method: intervals scored, MAE, MAPE, sMAPE, P10-P90 coverage, and series it won."""
    import pandas as pd

    table = Table(title=title)
    for column in ("method", "intervals", "MAE kWh", "MAPE %", "sMAPE %", "P10-P90 coverage", "series won"):
        table.add_column(
            column, justify="left" if column == "method" else "right", no_wrap=column == "method"
        )
    for row in summary.to_dict(orient="records"):
        table.add_row(
            str(row["method"]),
            f"{int(row['n']):,}",
            f"{row['mae']:,.3f}",
            "" if pd.isna(row["mape"]) else f"{row['mape']:.1f}",
            f"{row['smape']:.1f}",
            "" if pd.isna(row["coverage"]) else f"{row['coverage']:.2f}",
            str(wins.get(str(row["method"]), 0)),
        )
    return table


def backtest_all(
    items: dict[str, LoadSeries], first: date, last: date, window_days: int, refit_days: int, console: Console
) -> tuple[pd.DataFrame, dict[str, int], int]:
    """Every series backtested on its days in first..last; all their forecasts, per method the number
    of series it won, and the number of series chosen by default: too young for the backtest to score
    two methods (`bt.compared`), so nothing won there."""
    import pandas as pd

    from metrify_assets.forecasting import backtest as bt
    from metrify_assets.meters.days import days_between

    origins = days_between(first, last)
    frames, wins, by_default = [], dict.fromkeys(bt.METHODS, 0), 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("backtesting", total=len(items))
        for name, series in items.items():
            known = set(series.local_days())
            result = bt.backtest(series, [d for d in origins if d in known], window_days, refit_days)
            if len(result):
                summary = bt.evaluate(result)
                if bt.compared(summary):
                    wins[bt.winner(summary)] += 1
                else:
                    by_default += 1
                frames.append(result.assign(series=name))
            progress.update(task, advance=1, description=f"backtesting {name}")
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), wins, by_default


def with_basis(conn: psycopg.Connection, day: date, rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` (SHOW_SQL's) with why each series' method was chosen, as the forecast asset's metadata
    says it (`bt.basis`): `by_default` where the backtest could not compare methods (a young series),
    `backtest_methods` it scored, `history_days` of load for a default, and `why` in words. The
    chosen method's backtest MAE is kept only where the backtest chose it: a default's MAE backed
    no choice."""
    import pandas as pd

    from metrify_assets.forecasting import backtest as bt

    keys = list(zip(rows["region"], rows["segment"], strict=True))
    choices = bt.stored(conn, day, keys)
    found, days = [summary for summary, _ in choices], [n for _, n in choices]
    by_default = [n is not None for n in days]
    why = [
        bt.basis(summary, method, int(summary["origins"].max()) if len(summary) else 0, n or 0)
        for summary, method, n in zip(found, rows["method"], days, strict=True)
    ]
    return rows.assign(
        backtest_mae_kwh=rows["backtest_mae_kwh"].mask(pd.Series(by_default, index=rows.index, dtype=bool)),
        by_default=by_default,
        backtest_methods=[int(summary["mae"].notna().sum()) for summary in found],
        history_days=pd.array(days, dtype="Int64"),
        why=why,
    )


def newest_forecast_day(conn: psycopg.Connection) -> date | None:
    row = conn.execute("SELECT max(local_date) FROM ops.load_forecasts").fetchone()
    return row[0] if row else None


def register(app: typer.Typer) -> None:
    @forecast_app.command("show")
    def show(
        day: Annotated[
            datetime | None,
            typer.Option(formats=ISO_DAY, help="Forecast day (YYYY-MM-DD); default: the newest forecast."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON array of the series.")] = False,
    ) -> None:
        """The chosen forecast of each region x segment for a day: the method, P10/P50/P90 totals, the
        actual once that day's data has been through VEE, and what chose the method: the backtest (its
        MAE, against how many methods) or a default (a series too young for a backtest to compare).

        Exits with 1 when there is no forecast (for --day: none for that day; with --json: `[]`)."""
        from metrify_assets.storage.frames import read_frame

        settings = resolve_settings()
        with connect(settings) as conn:
            # The newest day is needed without --day, or to say what exists when --day has nothing.
            latest = None if day is not None else newest_forecast_day(conn)
            wanted = day.date() if day is not None else latest
            if wanted is None:
                typer.echo("no forecasts yet: the nightly daily_job (or `metrify run`) makes them", err=True)
                raise typer.Exit(code=1)
            rows = with_basis(conn, wanted, read_frame(conn, SHOW_SQL, {"day": wanted}))
            if rows.empty and day is not None and not as_json:
                latest = newest_forecast_day(conn)
        if as_json:
            typer.echo(rows.to_json(orient="records"))
            if rows.empty:
                raise typer.Exit(code=1)
            return
        if rows.empty:
            newest_note = f"; the newest is for {latest}" if latest else "; there are none yet"
            typer.echo(f"no forecast for {wanted}{newest_note}", err=True)
            raise typer.Exit(code=1)
        table = Table(title=f"load forecast for {wanted}: {len(rows)} series (kWh)")
        for column in (
            "region",
            "segment",
            "method",
            "P10",
            "P50",
            "P90",
            "actual",
            "backtest MAE",
            "chosen by",
            "version",
        ):
            table.add_column(column, justify="right" if column in ("P10", "P50", "P90", "actual") else "left")
        for r in rows.to_dict(orient="records"):
            partial = 0 < int(r["actual_intervals"]) < int(r["intervals"])
            actual = _kwh(r["actual_kwh"]) + (" (partial)" if partial else "")
            table.add_row(
                str(r["region"]), str(r["segment"]), str(r["method"]),
                _kwh(r["p10_kwh"]), _kwh(r["p50_kwh"]), _kwh(r["p90_kwh"]),
                actual, _kwh(r["backtest_mae_kwh"]), str(r["why"]), str(r["model_version"]),
            )  # fmt: skip
        command_console().print(table)
        note_embedded_server(settings)

    @forecast_app.command("backtest")
    def backtest_cmd(
        first: Annotated[
            datetime | None,
            typer.Option(
                formats=ISO_DAY, help="First forecast day backtested; default: 6 days before --last."
            ),
        ] = None,
        last: Annotated[
            datetime | None,
            typer.Option(
                formats=ISO_DAY, help="Last forecast day backtested; default: the newest day with data."
            ),
        ] = None,
        window_days: Annotated[int, typer.Option(min=7, help="Days each forecast is trained on.")] = 56,
        refit_days: Annotated[int, typer.Option(min=1, help="Backtest days one fitted model forecasts.")] = 7,
        country: Annotated[
            str, typer.Option(help="Country whose holidays are a feature (VEE series).")
        ] = "GB",
        openstef: Annotated[
            Path | None,
            typer.Option(
                exists=True, dir_okay=False, help="Backtest this OpenSTEF CSV instead of the VEE series."
            ),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="The per-method summary as one JSON array.")
        ] = False,
    ) -> None:
        """Forecast each day of first..last from the data before it, by the model and every baseline,
        and score them against what came: MAE, MAPE, sMAPE and P10-P90 coverage per method."""
        import pandas as pd

        from metrify_assets.forecasting import backtest as bt
        from metrify_assets.forecasting.inputs import read_series
        from metrify_assets.forecasting.openstef import openstef_series

        settings = resolve_settings()
        console = command_console(stderr=as_json)
        if openstef is not None:
            series = openstef_series(openstef)
            days = series.local_days()
            end = last.date() if last else days[-2]  # its last local day is partial
            items = {series.name: series}
        else:
            with connect(settings) as conn:
                newest = conn.execute("SELECT max(local_date) FROM ops.vee_readings").fetchone()
            if newest is None or newest[0] is None:
                console.print("no VEE series yet: `metrify run` builds them from ingested readings")
                raise typer.Exit(code=1)
            end = last.date() if last else newest[0]
        begin = first.date() if first else end - timedelta(days=6)
        if begin > end:
            raise typer.BadParameter(f"--first {begin} is after --last {end}", param_hint="--first")
        if openstef is None:
            with connect(settings) as conn:
                found = read_series(conn, begin - timedelta(days=window_days), end, country)
            items = {f"{region}/{segment}": s for (region, segment), s in found.items()}
        frame, wins, by_default = backtest_all(items, begin, end, window_days, refit_days, console)
        summary = bt.evaluate(frame) if len(frame) else pd.DataFrame()
        if as_json:
            typer.echo(summary.to_json(orient="records"))
            return
        if summary.empty:
            console.print(
                f"nothing to score for {begin}..{end}: the series need data before and on those days"
            )
            raise typer.Exit(code=1)
        title = (
            f"backtest {begin}..{end}: {len(items)} series, window {window_days} d, refit every {refit_days}"
        )
        console.print(summary_table(summary, wins, title))
        console.print(
            "series won: lowest MAE on the series' own days (the model only where it beats every baseline)"
        )
        if by_default:
            console.print(
                f"by default in {by_default} of {len(items)} series: no backtest to choose by yet "
                f"(under {bt.COMPARE_DAYS} days of history), so none won"
            )
        if openstef is None:
            note_embedded_server(settings)

    app.add_typer(forecast_app, name="forecast")
