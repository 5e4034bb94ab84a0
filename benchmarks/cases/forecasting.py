"""Case 8: day-ahead load forecasting: training and scoring time per 1,000 series, and the rolling
backtest of the model against the seasonal-naive, 4-weekday-mean and persistence baselines, on the
simulator's data and on the OpenSTEF sample.

Simulator data: N meters (200 at scale 1: the figure per 1,000 series is scaled from them, as each
series is one job of the same size) over 64 local days (a 56-day window, 7 backtest days and
the forecast day), from Europe/London's spring DST change on. The series are the simulator's own
clean readings and weather (`clean_readings`, `weather_messages`, drawn from the seeds `simulate`
gives them, so they equal `simulate`'s values before faults), built in memory: about a second for
1,000 meters, where `simulate` would take ~100 s only to write the same 6.1 million readings as
JSON messages (it makes ~60,000 readings a second in case 4). Each meter is one series, with its region's station temperature on the quarter-hour; the simulator's
loads do not respond to temperature, so the model's weather features carry no signal there.

Timing: `forecast_many` (what `load_forecast` runs per day partition) over one series per meter for
the forecast day, one worker per core, pool start and each worker's first imports included; beside it
the same work in process over a few series (after one warm-up series), so the speed-up reads against
the cores.

Accuracy: `bt.backtest` + `bt.evaluate` of the 7 days before the forecast day on the region x segment
sums of the same meters (what `load_forecast` forecasts), and on the OpenSTEF sample's last complete
local week with a 21-day window (as tests/forecasting/test_openstef.py). Metrics are per series and
pooled over a dataset's series weighted by their scored intervals; a series is won as a run chooses
(`bt.winner`: the model only where its MAE beats every baseline's), and a dataset by the most series
won.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.harness import CaseResult, stopwatch
from metrify_assets.forecasting import backtest as bt
from metrify_assets.forecasting.openstef import openstef_series
from metrify_assets.forecasting.run import forecast_many, forecast_series
from metrify_assets.forecasting.series import STEP, LoadSeries, day_origin
from metrify_assets.simulation import SimulationConfig
from metrify_assets.simulation.generate import STAGES
from metrify_assets.simulation.meter_readings import clean_readings
from metrify_assets.simulation.registry import build_registry
from metrify_assets.simulation.timegrid import local_grid
from metrify_assets.simulation.weather import weather_messages

WINDOW_DAYS, BACKTEST_DAYS = 56, 7
SIMULATED_DAYS = WINDOW_DAYS + BACKTEST_DAYS + 1
COUNTRY = "GB"
IN_PROCESS_SERIES = 5
COMPARED = bt.METHODS
METERS_AT_SCALE_1 = 200  # timed series; the figure per 1,000 is scaled from them (linear: one job each)
OPENSTEF_SAMPLE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "openstef_307_test.csv"
OPENSTEF_ORIGINS = [date(2020, 11, 23) + timedelta(days=d) for d in range(7)]  # the last complete local week
OPENSTEF_WINDOW_DAYS = 21


@dataclass(frozen=True)
class SimulatedLoad:
    """Per-meter series and their region x segment sums; load stops before `forecast_day`, the
    temperature runs through it (the weather forecast a live run would have)."""

    meters: dict[str, LoadSeries]
    aggregates: dict[str, LoadSeries]
    forecast_day: date


def _quarter_hour_temperature(messages: Mapping[date, list[str]], grid: pd.DatetimeIndex) -> pd.DataFrame:
    """Station (columns) temperature on the quarter-hour `grid`: the mean of its observations in each
    quarter-hour, as `forecasting/inputs.py` bins them."""
    records = [json.loads(m) for day in sorted(messages) for m in messages[day]]
    frame = pd.DataFrame(records)
    frame["at"] = pd.to_datetime(frame["observed_at"], utc=True, format="ISO8601").dt.floor(STEP)
    return frame.pivot_table(index="at", columns="station_id", values="temperature_c").reindex(grid)


def simulated_load(meters: int, seed: int = 42) -> SimulatedLoad:
    """The simulator's clean readings and weather for `meters` meters over SIMULATED_DAYS days."""
    config = SimulationConfig(meters=meters, days=SIMULATED_DAYS, seed=seed, fault_rate=0.0)
    registry_rng, meter_rng, _, weather_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(len(STAGES))
    )
    registry = build_registry(config, registry_rng)
    grid = local_grid(config.start, config.days, config.interval_minutes, config.timezone)
    energy = clean_readings(config, registry, grid, meter_rng).energy
    observations = local_grid(config.start, config.days, config.weather_interval_minutes, config.timezone)
    temperature = _quarter_hour_temperature(weather_messages(config, observations, weather_rng)[0], grid.utc)

    forecast_day = config.start + timedelta(days=SIMULATED_DAYS - 1)
    known = grid.utc < day_origin(forecast_day, config.timezone)
    stamps = grid.utc[known]

    def series(name: str, load: np.ndarray, station: str) -> LoadSeries:
        return LoadSeries(
            name=name,
            load=pd.Series(load[known], index=stamps),
            temperature=temperature[station],
            timezone=config.timezone,
            country=COUNTRY,
        )

    stations = registry["weather_station_id"].to_numpy(dtype=str)
    per_meter = {meter: series(meter, energy[i], stations[i]) for i, meter in enumerate(registry["meter_id"])}
    aggregates = {}
    for (region, segment), rows in registry.groupby(["region", "segment"], sort=True):
        name = f"{region}/{segment}"
        aggregates[name] = series(name, energy[rows.index].sum(axis=0), stations[rows.index[0]])
    return SimulatedLoad(per_meter, aggregates, forecast_day)


def accuracy(summaries: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per method of COMPARED, from `bt.evaluate` summaries per series: the metrics pooled over the
    series (weighted by their scored intervals) and the series it won (`bt.winner`, as a run chooses:
    the model only where its MAE beats every baseline's; a series whose backtest could not compare
    methods, `bt.compared`, is won by none: its choice is a default)."""
    frames = [s[s["method"].isin(COMPARED)].assign(series=name) for name, s in summaries.items()]
    scored = pd.concat(frames, ignore_index=True).dropna(subset=["mae"])
    won = pd.Series([bt.winner(s) for s in summaries.values() if bt.compared(s)]).value_counts()
    method, weight = scored["method"], scored["n"]
    metrics = ["mae", "mape", "smape", "coverage"]
    pooled = (
        scored[metrics].mul(weight, axis=0).groupby(method).sum().div(weight.groupby(method).sum(), axis=0)
    )
    pooled["series"] = method.value_counts()
    pooled["intervals"] = weight.groupby(method).sum()
    return pooled.reindex(list(COMPARED)).assign(won=won.reindex(list(COMPARED)).fillna(0).astype(int))


def _rows(dataset: str, table: pd.DataFrame) -> list[dict[str, object]]:
    best = best_method(table)
    return [
        {
            "dataset": dataset,
            "method": method,
            "series": int(row["series"]),
            "intervals": int(row["intervals"]),
            "MAE kWh": round(float(row["mae"]), 3),
            "MAPE %": round(float(row["mape"]), 2),
            "sMAPE %": round(float(row["smape"]), 2),
            "P10-P90 coverage": round(float(row["coverage"]), 3),
            "series won": int(row["won"]),
            "best": "yes" if method == best else "",
        }
        for method, row in table.iterrows()
    ]


def best_method(table: pd.DataFrame) -> str:
    """The method that won the most series, the lower pooled MAE between equals."""
    return str(table.sort_values(["won", "mae"], ascending=[False, True]).index[0])


def _maes(table: pd.DataFrame) -> str:
    return " / ".join(f"{mae:.3f}" for mae in table["mae"].reindex(list(COMPARED)))


def forecasting(scale: float) -> CaseResult:
    count = max(20, int(METERS_AT_SCALE_1 * scale))
    with stopwatch() as elapsed:
        sim = simulated_load(count)
    simulate_s = elapsed()
    day = sim.forecast_day
    first, *others = sim.meters
    with stopwatch() as elapsed:  # the first series pays for imports (scikit-learn), once per process
        forecast_series(sim.meters[first], day, WINDOW_DAYS, BACKTEST_DAYS)
    first_s = elapsed()
    in_process = {k: sim.meters[k] for k in others[:IN_PROCESS_SERIES]}
    with stopwatch() as elapsed:
        forecast_many(in_process, day, window_days=WINDOW_DAYS, backtest_days=BACKTEST_DAYS, workers=1)
    per_series_s = elapsed() / len(in_process)
    workers = min(os.cpu_count() or 1, count)
    with stopwatch() as elapsed:
        results = forecast_many(
            sim.meters, day, window_days=WINDOW_DAYS, backtest_days=BACKTEST_DAYS, workers=0
        )
    wall_s = elapsed()
    chosen = sum(r.winner == bt.MODEL for r in results.values())

    origins = [day - timedelta(days=k) for k in range(BACKTEST_DAYS, 0, -1)]
    simulated = accuracy(
        {
            name: bt.evaluate(bt.backtest(series, origins, WINDOW_DAYS))
            for name, series in sim.aggregates.items()
        }
    )
    sample_series = openstef_series(OPENSTEF_SAMPLE)
    openstef = accuracy(
        {sample_series.name: bt.evaluate(bt.backtest(sample_series, OPENSTEF_ORIGINS, OPENSTEF_WINDOW_DAYS))}
    )
    methods = " / ".join(COMPARED)
    return CaseResult(
        name="forecasting",
        title="8. Forecasting",
        figures={
            "simulated meters x days": f"{count} x {SIMULATED_DAYS}",
            "simulate s (in memory: clean readings + weather)": round(simulate_s, 2),
            "forecast day (window + backtest days)": f"{day} ({WINDOW_DAYS} + {BACKTEST_DAYS})",
            "first series s (imports, once per process)": round(first_s, 2),
            "in process s per series": round(per_series_s, 3),
            "series forecast (one per meter)": count,
            "workers (one per core)": workers,
            "forecast_many wall s": round(wall_s, 1),
            "s per 1,000 series": round(wall_s / count * 1000, 1),
            "series/s": round(count / wall_s, 2),
            "speed-up vs in process": round(per_series_s * count / wall_s, 2),
            "meters where the backtest chose the model": f"{chosen} of {count}",
            "simulator region x segment series": len(sim.aggregates),
            f"simulator MAE kWh {methods}": _maes(simulated),
            "simulator best (series won)": best_method(simulated),
            f"OpenSTEF MAE kWh {methods}": _maes(openstef),
            "OpenSTEF best": best_method(openstef),
        },
        rows=_rows("simulator region x segment", simulated) + _rows("OpenSTEF 307", openstef),
    )
