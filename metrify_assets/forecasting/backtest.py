"""Forecasting a day from what was known at its origin, and rolling-origin backtests: each origin's
day forecast by the model and every baseline from the data before it, scored against what came.

`forecast_day` cuts the load at the origin before it builds anything, so no forecast can see its
day (tests/forecasting/test_leakage.py also holds the features to that on their own). The model is
kept for a series only where it beats every baseline on the backtest's MAE (`ranking`): MAE because
net load crosses zero, where percentage errors say little.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import psycopg

from metrify_assets.forecasting import baselines, calibration, features, methods
from metrify_assets.forecasting import model as quantile_model
from metrify_assets.forecasting.series import LoadSeries, day_origin
from metrify_assets.meters.days import days_between
from metrify_assets.storage.frames import read_frame

MODEL = quantile_model.METHOD
METHODS = methods.METHODS
UNSCORED_ORDER = ("weekday_mean", "seasonal_naive", "persistence")
# Days of load before the forecast day a backtest needs to compare two methods: an origin with a week
# before it, for seasonal naive's and the weekday mean's last week. With fewer, at most persistence is
# scored and the choice is UNSCORED_ORDER's first that covers the day: a default, not a win.
COMPARE_DAYS = 8
WINDOW_DAYS = 56
REFIT_DAYS = 7  # backtest origins one fitted model forecasts (a refit costs ~0.4 s a series)
FORECAST_COLUMNS = ["reading_start", "local_date", "horizon_hour", "method", "p10", "p50", "p90"]
# MAPE only over intervals whose |actual| is at least this share of the mean |actual|: near zero
# (net load crossing over, a quiet night) a percentage error is unbounded.
MAPE_FLOOR_SHARE = 0.05
METRICS = ["n", "mae", "mape", "smape", "coverage"]


def no_forecasts() -> pd.DataFrame:
    """FORECAST_COLUMNS without rows, typed as a day's forecasts are: concatenated with other series'
    rows, the quantiles stay float64 (an untyped empty frame made them object, which matplotlib and
    numpy's isfinite refuse)."""
    return pd.DataFrame(
        {
            "reading_start": pd.Series(dtype="datetime64[ns, UTC]"),
            "local_date": pd.Series(dtype=object),
            "horizon_hour": pd.Series(dtype="int64"),
            "method": pd.Series(dtype=object),
            **{q: pd.Series(dtype="float64") for q in ("p10", "p50", "p90")},
        }
    )


@dataclass(frozen=True)
class DayForecast:
    """A day's forecasts by every method that could make one (FORECAST_COLUMNS), the model fitted
    for it, and the quarter-hours the day has (the rows a complete forecast holds)."""

    day: date
    forecasts: pd.DataFrame
    model: quantile_model.QuantileModel | None
    training_rows: int
    intervals: int


def _window(rows: pd.DataFrame, day: date, window_days: int) -> pd.DataFrame:
    """The training rows for `day`: its `window_days` local days before it that have an actual."""
    local = rows["local_date"]
    first = day - timedelta(days=window_days)
    return rows[(local >= first) & (local < day) & rows["actual"].notna()]


def _forecasts(
    target: pd.DataFrame, train: pd.DataFrame, fitted: quantile_model.QuantileModel | None
) -> pd.DataFrame:
    """The target day's rows forecast by every method that can forecast it: the model only where one
    was fitted, a baseline only where its history gives a P50 for at least one quarter-hour (a series
    younger than a week has no seasonal naive or weekday mean: no rows, rather than a day of nulls).
    A quarter-hour whose history has a gap keeps its row with a null P50."""
    frames = []
    for method in METHODS:
        if method == MODEL:
            if fitted is None:
                continue
            predicted = fitted.predict(target)
        else:
            predicted = baselines.forecast(target, train, method)
            if predicted["p50"].isna().all():
                continue
        frames.append(target[FORECAST_COLUMNS[:3]].assign(method=method).join(predicted))
    if not frames:
        return no_forecasts()
    return pd.concat(frames, ignore_index=True)


def forecast_day(series: LoadSeries, day: date, window_days: int = WINDOW_DAYS) -> DayForecast:
    """Forecast the local `day` by every method from the `window_days` days before it."""
    known = series.before(day_origin(day, series.timezone))
    rows = features.build(known, [day - timedelta(days=k) for k in range(window_days, -1, -1)])
    train = _window(rows, day, window_days)
    fitted = quantile_model.fit(train)
    target = rows[rows["local_date"] == day]
    return DayForecast(
        day, _forecasts(target, train, fitted), fitted, len(quantile_model.trainable(train)), len(target)
    )


def backtest(
    series: LoadSeries,
    origins: Sequence[date],
    window_days: int = WINDOW_DAYS,
    refit_days: int = REFIT_DAYS,
) -> pd.DataFrame:
    """Every origin's forecasts (FORECAST_COLUMNS) with `actual` from the whole series.

    Features are built once for the whole span: each day's features read only the load before its
    origin (tests/forecasting/test_leakage.py), so this equals cutting the series per origin. The
    model is refitted every `refit_days` origins (1: at each, as `forecast_day` does) on the window
    before the origin it is fitted at, and forecasts the origins up to the next refit: a model up to
    `refit_days` - 1 days older than a live run's, so the backtest errs against the model if at all.
    The model's interval is widened by the conformal margin of the origins before each one
    (calibration.py); `margin` says by how much.
    """
    if not origins:
        return no_forecasts().assign(margin=pd.Series(dtype="float64"), actual=pd.Series(dtype="float64"))
    ordered = sorted(origins)
    first = ordered[0] - timedelta(days=window_days)
    rows = features.build(series, days_between(first, ordered[-1]))
    frames: list[pd.DataFrame] = []
    past = np.empty(0)
    fitted, fitted_at = None, None
    for day in ordered:
        train = _window(rows, day, window_days)
        if fitted_at is None or (day - fitted_at).days >= refit_days:
            fitted, fitted_at = quantile_model.fit(train), day
        target = rows[rows["local_date"] == day]
        forecasts = _forecasts(target, train, fitted)
        if forecasts.empty:  # no method had the history for this origin (yesterday and last week absent)
            continue
        actual = series.load.reindex(pd.DatetimeIndex(forecasts["reading_start"])).to_numpy(dtype="float64")
        day_frame = calibration.widen(forecasts, calibration.margin(past)).assign(actual=actual)
        past = np.concatenate([past, calibration.scores(day_frame)])
        frames.append(day_frame)
    if not frames:
        return no_forecasts().assign(margin=pd.Series(dtype="float64"), actual=pd.Series(dtype="float64"))
    return pd.concat(frames, ignore_index=True)


def scorable(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows every method that forecast at all can be compared on: actual known, and a P50 by each
    of those methods at the same interval."""
    present = frame.dropna(subset=["actual", "p50"])
    methods = present["method"].unique()
    counts = present.groupby("reading_start")["method"].nunique()
    common = counts.index[counts == len(methods)]
    return present[present["reading_start"].isin(common)]


def _scores(rows: pd.DataFrame, floor: float) -> pd.Series:
    actual, p50 = rows["actual"].to_numpy(), rows["p50"].to_numpy()
    error = np.abs(actual - p50)
    big = np.abs(actual) >= floor
    denominator = np.abs(actual) + np.abs(p50)
    smape = np.divide(2 * error, denominator, out=np.zeros_like(error), where=denominator > 0)
    # coverage over the intervals the method gave a P10..P90 for: a point forecast is no miss
    p10, p90 = rows["p10"].to_numpy(dtype="float64"), rows["p90"].to_numpy(dtype="float64")
    banded = ~(np.isnan(p10) | np.isnan(p90))
    inside = (actual[banded] >= p10[banded]) & (actual[banded] <= p90[banded])
    return pd.Series(
        {
            "n": float(len(rows)),
            "mae": float(error.mean()) if len(rows) else np.nan,
            "mape": float(100 * (error[big] / np.abs(actual[big])).mean()) if big.any() else np.nan,
            "smape": float(100 * smape.mean()) if len(rows) else np.nan,
            "coverage": float(inside.mean()) if banded.any() else np.nan,
        }
    )


def evaluate(frame: pd.DataFrame, by_hour: bool = False) -> pd.DataFrame:
    """MAE, MAPE (%), sMAPE (%) and P10-P90 coverage per method (and horizon hour), on the common
    rows (`scorable`); `n` counts them."""
    rows = scorable(frame)
    floor = MAPE_FLOOR_SHARE * float(rows["actual"].abs().mean()) if len(rows) else 0.0
    keys = ["method", "horizon_hour"] if by_hour else ["method"]
    if rows.empty:
        return pd.DataFrame(columns=[*keys, *METRICS])
    scored = rows.groupby(keys)[["actual", "p10", "p50", "p90"]].apply(lambda g: _scores(g, floor))
    return scored.reset_index()


def ranking(summary: pd.DataFrame) -> list[str]:
    """Every method, the preferred first: the model where its MAE beats every baseline's, then the
    baselines by MAE, then those the backtest could not score (the weekday mean first: it needs only
    a week of history), the model last."""
    mae = summary.set_index("method")["mae"].dropna() if len(summary) else pd.Series(dtype="float64")
    rivals = [mae[name] for name in baselines.BASELINES if name in mae]
    model_wins = MODEL in mae and bool(rivals) and all(mae[MODEL] < r for r in rivals)
    scored = sorted((name for name in baselines.BASELINES if name in mae), key=lambda name: mae[name])
    unscored = [name for name in UNSCORED_ORDER if name not in scored]
    return [MODEL, *scored, *unscored] if model_wins else [*scored, *unscored, MODEL]


def compared(summary: pd.DataFrame) -> bool:
    """Whether the backtest scored two or more methods, so that `ranking` chose by MAE (the demo's
    summary and `metrify forecast show` apply it to the stored backtests through `stored`)."""
    return len(summary) > 0 and int(summary["mae"].notna().sum()) >= 2


# Every method's stored backtest behind each series' choice for a day: what `compared` and `basis` read.
STORED_SQL = """
SELECT region, segment, method, mae_kwh AS mae, origins FROM ops.load_forecast_backtests
WHERE local_date = %(day)s
"""
# Days of load before the day of the series chosen by default (young, so few rows to count).
HISTORY_SQL = """
SELECT a.region, a.segment, count(DISTINCT a.local_date)
FROM ops.load_actuals a
JOIN unnest(%(regions)s::text[], %(segments)s::text[]) AS s (region, segment)
    ON a.region = s.region AND a.segment = s.segment
WHERE a.local_date < %(day)s AND a.energy_kwh IS NOT NULL
GROUP BY 1, 2
"""


def stored(
    conn: psycopg.Connection, day: date, series: Sequence[tuple[str, str]]
) -> list[tuple[pd.DataFrame, int | None]]:
    """Per (region, segment) of a stored forecast day: its methods' backtest summary (method, mae,
    origins) and, where it was chosen by default (not `compared`), its days of load before the day
    (None where the backtest chose). The one reading of the stored tables that `metrify forecast
    show` and the demo's summary share."""
    backtests = read_frame(conn, STORED_SQL, {"day": day})
    summaries = dict(tuple(backtests.groupby(["region", "segment"]))) if len(backtests) else {}
    none = pd.DataFrame({"method": [], "mae": [], "origins": []})
    found = [summaries.get(key, none) for key in series]
    young = [key for key, summary in zip(series, found, strict=True) if not compared(summary)]
    history: dict[tuple[str, str], int] = {}
    if young:
        params = {"day": day, "regions": [r for r, _ in young], "segments": [s for _, s in young]}
        history = {(r, s): int(n) for r, s, n in conn.execute(HISTORY_SQL, params).fetchall()}
    return [
        (summary, None if compared(summary) else history.get(key, 0))
        for key, summary in zip(series, found, strict=True)
    ]


def basis(summary: pd.DataFrame, chosen: str, origins: int, history_days: int) -> str:
    """Why `chosen` was chosen, in words for people: a backtest's choice (over `origins` days), or a
    default where the backtest could not compare methods (a young series with `history_days` days of
    load before the forecast day: a margin or MAE there would mean nothing). The forecast asset's
    metadata and `metrify forecast show` both say it so."""
    if not compared(summary):
        return (
            f"no backtest to choose by yet: {history_days} day{'' if history_days == 1 else 's'} of history, "
            f"{COMPARE_DAYS} needed; {chosen} by default"
        )
    scored, over = int(summary["mae"].notna().sum()), f"over {origins} days"
    top = ranking(summary)[0]
    if chosen == top:
        return f"lowest backtest MAE of {scored} methods {over}"
    return f"next by backtest MAE {over}: {top} has no forecast for every quarter-hour of the day"


def winner(summary: pd.DataFrame) -> str:
    """The backtest's choice: the first of `ranking`."""
    return ranking(summary)[0]
