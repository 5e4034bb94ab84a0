"""One series' day-ahead forecast as a run makes it: a rolling backtest over the days just before the
forecast day ranks the methods (the model first only where it beats every baseline), every method
forecasts the day from the full window, and the best-ranked one that covers the whole day is chosen."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import TypeVar

import pandas as pd

from metrify_assets.forecasting import backtest as bt
from metrify_assets.forecasting import calibration
from metrify_assets.forecasting import model as quantile_model
from metrify_assets.forecasting.features import WEEKS
from metrify_assets.forecasting.series import LoadSeries

BACKTEST_DAYS = 7
# Seconds a worker pool takes to start and warm up inside a run (measured 3-5 s on 2 cores, where
# 8 series of two days took 1.0-1.5 s in process and 4.3-6.7 s in a pool).
POOL_START_S = 5.0
K = TypeVar("K")


@dataclass(frozen=True)
class SeriesForecast:
    """The forecast day by every method, the backtest summary behind the choice, and the choice."""

    series: LoadSeries
    day: date
    forecast: bt.DayForecast
    summary: pd.DataFrame  # bt.evaluate of the backtest: method, n, mae, mape, smape, coverage
    origins: int
    winner: str
    margin_kwh: float  # the conformal widening of the model's P10..P90 (calibration.py)

    @property
    def selected(self) -> pd.DataFrame:
        """The chosen method's rows."""
        rows = self.forecast.forecasts
        return rows[rows["method"] == self.winner]

    @property
    def history_days(self) -> int:
        """Local days with load before the forecast day."""
        return sum(1 for d in self.series.local_days() if d < self.day)

    @property
    def basis(self) -> str:
        """Why the chosen method: `bt.basis` of this series' backtest."""
        return bt.basis(self.summary, self.winner, self.origins, self.history_days)

    @property
    def skipped(self) -> str | None:
        """Why the day has no forecast at all (None where the chosen method has a P50 for at least one
        quarter-hour): no method had the history, as on a sparse or gappy series. The run writes
        nothing for such a series-day (what an earlier run stored for it stands) and names it with
        this reason in its metadata."""
        if self.selected["p50"].notna().any():
            return None
        before = [d for d in self.series.local_days() if d < self.day]
        last = f"last load on {before[-1]}" if before else "no load before it"
        yesterday = self.day - timedelta(days=1)
        weeks = [self.day - timedelta(days=7 * k) for k in (1, WEEKS)]
        return (
            f"no forecast: no load on {yesterday} (persistence) nor on the same weekday of the {WEEKS} "
            f"weeks before ({weeks[0]} .. {weeks[1]}: seasonal naive, weekday mean), and "
            f"{self.forecast.training_rows} of the {quantile_model.MIN_TRAINING_ROWS} training rows the "
            f"model needs; {last}"
        )

    @property
    def unforecast(self) -> int:
        """Quarter-hours of the day without a P50 from the chosen method."""
        return self.forecast.intervals - int(self.selected["p50"].notna().sum())


def forecast_series(
    series: LoadSeries,
    day: date,
    window_days: int = bt.WINDOW_DAYS,
    backtest_days: int = BACKTEST_DAYS,
    refit_days: int = bt.REFIT_DAYS,
) -> SeriesForecast:
    """Backtest the `backtest_days` days before `day` that have load, choose, and forecast `day`."""
    known = set(series.local_days())
    origins = [day - timedelta(days=k) for k in range(backtest_days, 0, -1)]
    origins = [d for d in origins if d in known]
    tested = bt.backtest(series, origins, window_days, refit_days)
    summary = bt.evaluate(tested)
    widening = calibration.margin(calibration.scores(tested)) if len(tested) else 0.0
    made = bt.forecast_day(series, day, window_days)
    final = replace(made, forecasts=calibration.widen(made.forecasts, widening))
    won = _first_complete(bt.ranking(summary), final.forecasts, final.intervals)
    return SeriesForecast(series, day, final, summary, len(origins), won, widening)


def _first_complete(ranked: list[str], forecasts: pd.DataFrame, need: int) -> str:
    """The first method in `ranked` with a P50 for each of the day's `need` quarter-hours (a model not
    fitted, or a baseline the series is too young for, has none), else the one with the most."""
    present = forecasts.dropna(subset=["p50"]).groupby("method").size()
    complete = [m for m in ranked if present.get(m, 0) == need]
    return complete[0] if complete else max(ranked, key=lambda m: present.get(m, 0))


def _forecast(args: tuple[LoadSeries, date, int, int, int]) -> SeriesForecast:
    return forecast_series(*args)


def pool_pays(first_seconds: float, remaining: int, workers: int) -> bool:
    """Whether `remaining` series, each taking about `first_seconds` in process, finish sooner in a
    pool of `workers`: it saves the work the other workers take over and costs POOL_START_S."""
    if workers < 2 or remaining < 2:
        return False
    saved = first_seconds * remaining * (1 - 1 / min(workers, remaining))
    return saved > POOL_START_S


def forecast_many(
    items: Mapping[K, LoadSeries],
    day: date,
    window_days: int = bt.WINDOW_DAYS,
    backtest_days: int = BACKTEST_DAYS,
    refit_days: int = bt.REFIT_DAYS,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[K, SeriesForecast]:
    """`forecast_series` for each series; `progress(done, total)` is called as series finish.

    `workers` 1 runs them in this process, 2 or more in that many worker processes. 0 (the default)
    forecasts the first series here, times it, and starts a pool of one worker per core for the rest
    only when `pool_pays`: a few short series (a new deployment's) finish before a pool has started.

    Workers come from a fork server that has imported this module: forking the caller itself (a
    Dagster run, with its threads) could copy a lock another thread held, and spawning a fresh
    interpreter per worker costs seconds of imports."""
    keys = list(items)
    jobs = [(items[k], day, window_days, backtest_days, refit_days) for k in keys]
    results: list[SeriesForecast] = []

    def done(result: SeriesForecast) -> None:
        results.append(result)
        if progress:
            progress(len(results), len(jobs))

    count = workers or os.cpu_count() or 1
    if jobs and workers == 0:
        started = time.perf_counter()
        done(_forecast(jobs[0]))
        if not pool_pays(time.perf_counter() - started, len(jobs) - 1, count):
            count = 1
    rest = jobs[len(results) :]
    if count == 1 or len(rest) < 2:
        for job in rest:
            done(_forecast(job))
        return dict(zip(keys, results, strict=True))
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=min(count, len(rest)), mp_context=context) as pool:
        for result in pool.map(_forecast, rest, chunksize=max(1, len(rest) // (count * 8))):
            done(result)
    return dict(zip(keys, results, strict=True))
