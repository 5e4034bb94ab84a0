"""`load_forecast`: each day partition's data makes the next day's quarter-hourly forecast per
region x segment, by the model and the three baselines, with the backtest's choice marked.

The partition is the last day of data (the same days as `vee_meter_readings`); its forecast is for
the day after. Each series is trained on a rolling window of the VEE series ending that day.
"""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation at runtime.

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd
from pydantic import Field

from metrify_assets.errors import RETRY_POLICY, classified_step
from metrify_assets.forecasting import backtest as bt
from metrify_assets.forecasting.charts import forecast_chart_png
from metrify_assets.forecasting.inputs import read_series
from metrify_assets.forecasting.run import BACKTEST_DAYS, SeriesForecast, forecast_many
from metrify_assets.forecasting.series import LoadSeries, day_intervals
from metrify_assets.forecasting.store import MODEL_PREFIX, save
from metrify_assets.forecasting.writes import ACTUAL_COLUMNS, write_actuals, write_forecasts
from metrify_assets.metadata import markdown_table, png_markdown
from metrify_assets.meters.days import days_between
from metrify_assets.meters.vee.assets import archived_days
from metrify_assets.partitions import DAYS, SINGLE_RUN, partition_days
from metrify_assets.resources import LakeResource, PostgresResource
from metrify_assets.teams import DATA_SCIENCE, owner

OWNERS = [owner(DATA_SCIENCE)]
# A series-day with fewer days of load before it is young: the backtest cannot compare the methods yet,
# persistence has only what yesterday held (a first day that began mid-day), and the weekday methods
# nothing. Its missing quarter-hours are what a new deployment expects, not a fault.
YOUNG_DAYS = bt.COMPARE_DAYS
DEFAULT_COUNTRY = "GB"


class LoadForecastConfig(dg.Config):
    window_days: int = Field(default=bt.WINDOW_DAYS, description="Local days a forecast is trained on.")
    backtest_days: int = Field(
        default=BACKTEST_DAYS, description="Days before the forecast day backtested to choose the method."
    )
    refit_days: int = Field(
        default=bt.REFIT_DAYS, description="Backtest days one fitted model forecasts before a refit."
    )
    workers: int = Field(
        default=0,
        ge=0,
        description="Processes the series are forecast in (1: the run's; N: a pool of N; 0: one per core when timing the first series shows a pool pays for its start).",
    )
    holiday_country: str = Field(
        default=DEFAULT_COUNTRY,
        description="Country (ISO code, `holidays` package) whose holidays are a feature.",
    )


def forecast_rows(
    result: SeriesForecast, region: str, segment: str, versions: dict[str, str]
) -> pd.DataFrame:
    """Each method's rows, with the version of that method (store.describe)."""
    rows = result.forecast.forecasts.rename(columns={"p10": "p10_kwh", "p50": "p50_kwh", "p90": "p90_kwh"})
    return rows.assign(
        region=region,
        segment=segment,
        issued_for=result.day - timedelta(days=1),
        selected=rows["method"] == result.winner,
        model_version=rows["method"].map(versions),
    )


def actual_rows(found: dict[tuple[str, str], LoadSeries], day: date) -> pd.DataFrame:
    """Every quarter-hour of each series' local `day` with the load the model learns from (NaN where
    the series has none): what the marts score the forecasts of that day against."""
    frames = []
    for (region, segment), series in found.items():
        grid = day_intervals([day], series.timezone)[["reading_start", "local_date"]]
        values = series.load.reindex(pd.DatetimeIndex(grid["reading_start"])).to_numpy()
        frames.append(grid.assign(region=region, segment=segment, energy_kwh=values))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ACTUAL_COLUMNS)


def backtest_rows(
    result: SeriesForecast, region: str, segment: str, versions: dict[str, str]
) -> pd.DataFrame:
    summary = result.summary
    return pd.DataFrame(
        {
            "region": region,
            "segment": segment,
            "local_date": result.day,
            "method": summary["method"].astype(str),
            "origins": result.origins,
            "intervals": summary["n"].astype("int64"),
            "mae_kwh": summary["mae"],
            "mape_pct": summary["mape"],
            "smape_pct": summary["smape"],
            "coverage": summary["coverage"],
            "selected": summary["method"] == result.winner,
            "model_version": summary["method"].astype(str).map(versions),
        }
    )


NOT_SCORED = "-"  # a method the backtest did not score, or a model interval that was not widened


def winners_table(results: list[tuple[str, str, SeriesForecast]]) -> pd.DataFrame:
    """Per series and forecast day: the chosen method, why (a backtest's choice or a default), each
    method's backtest MAE and the model's interval widening where the model was chosen."""
    records = []
    for region, segment, result in results:
        mae = result.summary.set_index("method")["mae"].dropna() if len(result.summary) else pd.Series()
        records.append(
            {
                "region": region,
                "segment": segment,
                "day": result.day.isoformat(),
                "chosen": NOT_SCORED if result.skipped else result.winner,
                "why": result.skipped or result.basis,
                **{f"mae {m}": f"{float(mae[m]):.3f}" if m in mae else NOT_SCORED for m in bt.METHODS},
                "model interval widening kWh": (
                    f"{result.margin_kwh:.3f}" if result.winner == bt.MODEL else NOT_SCORED
                ),
            }
        )
    return pd.DataFrame(records)


def skipped_table(results: list[tuple[str, str, SeriesForecast]]) -> pd.DataFrame:
    """Per series and forecast day that got no forecast at all: why (`SeriesForecast.skipped`)."""
    records = [
        {"region": region, "segment": segment, "day": result.day.isoformat(), "why": result.skipped}
        for region, segment, result in results
        if result.skipped
    ]
    return pd.DataFrame(records, columns=["region", "segment", "day", "why"])


def young_without_value(gaps: Iterable[tuple[int, int]]) -> int:
    """Of each series-day's (quarter-hours without a value, days of load before it), the quarter-hours
    of the young ones (under `YOUNG_DAYS` days of load)."""
    return sum(missing for missing, history in gaps if history < YOUNG_DAYS)


def completeness_severity(without_value: int, young: int) -> dg.AssetCheckSeverity:
    """WARN when every quarter-hour without a value is in a young series-day (a new deployment's first
    days: the trial's 4 meters over 2 days failed with 191), ERROR when an established series has gaps."""
    return (
        dg.AssetCheckSeverity.WARN
        if without_value and young == without_value
        else dg.AssetCheckSeverity.ERROR
    )


@dg.asset(
    deps=["vee_meter_readings", "meter_registry", "validated_weather_observations"],
    partitions_def=DAYS,
    backfill_policy=SINGLE_RUN,
    group_name="forecasting",
    kinds={"postgres", "s3", "scikitlearn"},
    owners=OWNERS,
    description="Day-ahead load forecasts: the day after each partition, quarter-hourly per region x "
    "segment, by a quantile gradient-boosting model (P10/P50/P90) and three baselines (seasonal naive, "
    "mean of the last 4 same weekdays, persistence), in ops.load_forecasts; a rolling backtest over the days "
    "before chooses the method (the model only where it beats every baseline), in "
    "ops.load_forecast_backtests; the partition's own day of each series, as the marts score forecasts "
    "against, in ops.load_actuals. Models and their backtests are versioned in the lake under "
    "`models/load_forecast/<day>/`.",
    metadata={
        "table": "ops.load_forecasts",
        "lake_prefix": f"{MODEL_PREFIX}/",
        "partitioned_by": "last day of data",
    },
    check_specs=[
        dg.AssetCheckSpec(
            "load_forecast_complete",
            asset="load_forecast",
            description="Every quarter-hour of every series' forecast day has a value from the chosen method "
            "in ops.load_forecasts. A failure (selected_without_value > 0) means some series have gaps in "
            "their forecast; the rows that have values are written and the run goes on. A series-day no method "
            "could forecast (series_days_skipped: no load yesterday nor on the same weekday of the last 4 weeks, "
            "too little to fit the model) counts its whole day. Severity WARN when every gap is in a series "
            "with under 8 days of load before its forecast day (a new deployment), ERROR otherwise.",
        )
    ],
    retry_policy=RETRY_POLICY,
)
@classified_step
def load_forecast(
    context: dg.AssetExecutionContext,
    config: LoadForecastConfig,
    postgres: PostgresResource,
    lake: LakeResource,
) -> dg.MaterializeResult:
    first, last = partition_days(context)
    store = lake.get_lake()
    results: list[tuple[str, str, SeriesForecast]] = []
    forecasts, backtests = [], []
    with postgres.connect() as conn:
        archived = archived_days(conn, first, last)
        if archived:
            context.log.warning(
                f"{len(archived)} days of the run left PostgreSQL ({archived[0]} .. {archived[-1]}): skipped, "
                "their actuals and the forecasts they made stand; restore them (`metrify restore --dataset "
                "meter_readings --from ... --to ...`) to forecast from them again"
            )
        # A day not over yet (`metrify run` over today's partition) would forecast tomorrow from part of
        # today, and store part of today as its actuals: left for a run after midnight. Midnight UTC,
        # as daily_job_schedule (02:30 UTC, for yesterday) has it: a series west of UTC would otherwise
        # get no forecast from that run at all (docs/forecasting.md#known-limits).
        today = datetime.now(UTC).date()
        unfinished = [d for d in days_between(first, last) if d >= today]
        if unfinished:
            context.log.warning(
                f"{len(unfinished)} days of the run are not over yet ({unfinished[0]} .. {unfinished[-1]}; "
                f"UTC today {today}): skipped, no forecast from part of a day; a run of the day once it is "
                "over forecasts from it (daily_job_schedule, or `metrify run` when it covers the day again)"
            )
        for issued in days_between(first, last):
            if issued in archived or issued in unfinished:
                continue
            day = issued + timedelta(days=1)
            start = day - timedelta(days=config.window_days + config.backtest_days)
            found = read_series(conn, start, issued, config.holiday_country)
            write_actuals(conn, actual_rows(found, issued))
            made = forecast_many(
                found, day, config.window_days, config.backtest_days, config.refit_days, config.workers
            )
            for (region, segment), result in made.items():
                results.append((region, segment, result))
                if result.skipped:  # nothing to write: what an earlier run stored for the day stands
                    continue
                info = save(store, result, region, segment, config.window_days)
                forecasts.append(forecast_rows(result, region, segment, info["versions"]))
                backtests.append(backtest_rows(result, region, segment, info["versions"]))
        if forecasts:
            write_forecasts(
                conn, pd.concat(forecasts, ignore_index=True), pd.concat(backtests, ignore_index=True)
            )
    rows = pd.concat(forecasts, ignore_index=True) if forecasts else pd.DataFrame()
    selected = rows[rows["selected"]] if len(rows) else rows
    charted = selected[selected["p50_kwh"].notna()] if len(selected) else selected
    without_value = sum(result.unforecast for _, _, result in results)
    winners = winners_table(results)
    skipped = skipped_table(results)
    if len(skipped):
        context.log.warning(
            f"{len(skipped)} series-days without a forecast (no method had the history): "
            + "; ".join(f"{r.region}/{r.segment} {r.day}: {r.why}" for r in skipped.itertuples())
        )
    # A win is a backtest's choice; a young series' default (persistence) is counted apart.
    # A skipped series-day (no forecast) counts in neither.
    chosen = [result for _, _, result in results if not result.skipped]
    wins = Counter(result.winner for result in chosen if bt.compared(result.summary))
    by_default = Counter(result.winner for result in chosen if not bt.compared(result.summary))
    context.log.info(
        f"forecast {len(results)} series-days for {first + timedelta(days=1)}..{last + timedelta(days=1)}: "
        f"chosen by backtest {dict(wins)}, by default (under {bt.COMPARE_DAYS} days of history) {dict(by_default)}, "
        f"without a forecast {len(skipped)}"
    )
    young = young_without_value((result.unforecast, result.history_days) for _, _, result in results)
    check = dg.AssetCheckResult(
        check_name="load_forecast_complete",
        passed=without_value == 0,
        severity=completeness_severity(without_value, young),
        metadata={
            "series_days": dg.MetadataValue.int(len(results)),
            "series_days_skipped": dg.MetadataValue.int(len(skipped)),
            "rows": dg.MetadataValue.int(len(rows)),
            "selected_rows": dg.MetadataValue.int(len(selected)),
            "selected_without_value": dg.MetadataValue.int(without_value),
            "young_without_value": dg.MetadataValue.int(young),
            "headline": dg.MetadataValue.text(
                f"selected_without_value {without_value}"
                + (
                    f" (all in series under {YOUNG_DAYS} days old)"
                    if without_value and young == without_value
                    else ""
                )
            ),
        },
        description="Every quarter-hour of every series' forecast day has a value from the chosen method.",
    )
    return dg.MaterializeResult(
        metadata={
            "forecast_days": dg.MetadataValue.text(
                f"{first + timedelta(days=1)} .. {last + timedelta(days=1)}"
            ),
            "series_days": dg.MetadataValue.int(len(results)),
            "series_days_skipped": dg.MetadataValue.int(len(skipped)),
            "skipped": dg.MetadataValue.md(markdown_table(skipped) if len(skipped) else "none"),
            "partitions_skipped": dg.MetadataValue.text(
                ", ".join(
                    [f"{d} (left PostgreSQL)" for d in archived] + [f"{d} (not over yet)" for d in unfinished]
                )
                or "none"
            ),
            "rows": dg.MetadataValue.int(len(rows)),
            **{f"wins_{method}": dg.MetadataValue.int(wins[method]) for method in bt.METHODS},
            "chosen_by_default": dg.MetadataValue.int(sum(by_default.values())),
            "winners": dg.MetadataValue.md(
                markdown_table(winners) if len(winners) else "no series with data"
            ),
            **(
                {"chart": dg.MetadataValue.md(png_markdown(forecast_chart_png(charted), "forecast day"))}
                if len(charted)
                else {}
            ),
        },
        check_results=[check],
    )
