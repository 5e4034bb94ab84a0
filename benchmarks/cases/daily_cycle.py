"""Case 4: the daily batch cycle, and how the hourly refresh grows with history.

The cycle: N meters x 7 days simulated, landed and ingested into `ops` (one ingest run per landing
file), the anomaly model trained once (`weekly_job`), then `refresh_job` (registry, anomaly scores,
enrichment, dbt marts) and `daily_job` (archive tier, report) over the local days the batches
touched, in the embedded PostgreSQL, as raw-equivalent MB/s.

The growth: the refresh of one new day, as the hourly schedule runs it (`refresh_job` over that
day's partition), once with 7 days of history and once with 56, same meters and same new day. Each
history is ingested (directly, `process_batch` per weekly landing file: it is not what is timed)
and refreshed in a fresh home, then the new day lands and is ingested, and its refresh is timed 2
times at scale 1 (3 from scale 1.5), the median reported. The day partitions are meant to make that
refresh cost the same a year in as on the first day: 56 d / 7 d should stay near 1 (goal <= 1.25).

Below scale 0.5 (`--quick`) the case is a smoke run: the cycle over 2 days, no growth.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd

from benchmarks.harness import CaseResult, stopwatch
from metrify_assets.contracts import contract_for
from metrify_assets.definitions import defs as load_defs
from metrify_assets.env import Settings, resolve_settings
from metrify_assets.ingestion.assets import landing_spec
from metrify_assets.ingestion.batch import process_batch
from metrify_assets.ingestion.landing import LandedFile
from metrify_assets.orchestration.catchup import DOWNSTREAM_JOBS, ingest_files, touched_days
from metrify_assets.orchestration.instance import execute_job, local_instance
from metrify_assets.partitions import contiguous_ranges, partition_range_tags
from metrify_assets.resources.build import postgres_resource
from metrify_assets.resources.lake import Lake
from metrify_assets.schedules import TRAINING_ASSETS
from metrify_assets.simulation import Simulation, SimulationConfig, simulate, write_simulation
from metrify_assets.storage.embedded_server import stop_embedded

CYCLE_DAYS = 7
# Below scale 0.5 (--quick) a smoke run: every ingest run and day partition costs seconds.
SMOKE_CYCLE_DAYS = 2
SHORT_HISTORY, LONG_HISTORY = 7, 56  # days of history before the new day
HISTORY_DAYS_PER_FILE = 7  # history lands in weekly files: not timed, and a file costs ~0.5 s of set-up
GROWTH_FIGURE = f"refresh growth ({LONG_HISTORY} d / {SHORT_HISTORY} d history)"
GROWTH_GOAL = 1.25


@dataclass(frozen=True)
class BenchHome:
    home: Path
    settings: Settings
    instance: dg.DagsterInstance
    defs: dg.Definitions


@contextmanager
def bench_home(prefix: str) -> Iterator[BenchHome]:
    """A fresh METRIFY_HOME / DAGSTER_HOME (embedded PostgreSQL, lake, landing) for the block; its
    database is shut down and the directory removed afterwards, the environment restored."""
    home = Path(tempfile.mkdtemp(prefix=f"metrify-bench-{prefix}-"))
    saved = {k: os.environ.get(k) for k in ("METRIFY_HOME", "DAGSTER_HOME")}
    os.environ["METRIFY_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    settings = resolve_settings()
    instance = local_instance(settings)
    try:
        yield BenchHome(home, settings, instance, load_defs())
    finally:
        instance.dispose()
        stop_embedded(settings.pg_data_dir)
        shutil.rmtree(home, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def meter_json_mb(files: list[LandedFile]) -> float:
    return sum(f.path.stat().st_size for f in files if f.source == "meter_readings") / 1e6


def ingested_readings(settings: Settings) -> int:
    with postgres_resource(settings).connect() as conn:
        row = conn.execute(
            "SELECT sum(records_in) FROM ops.ingest_ledger WHERE source = 'meter_readings'"
        ).fetchone()
    return int(row[0]) if row and row[0] else 0


def cycle(meters: int, days: int = CYCLE_DAYS) -> dict[str, object]:
    """Simulate, ingest, train, then refresh + daily over the touched days: the figures of the cycle."""
    with bench_home("cycle") as env:
        config = SimulationConfig(meters=meters, days=days, fault_rate=0.005, seed=3)
        with stopwatch() as elapsed:
            sim = simulate(config)
            written = write_simulation(sim, env.settings.landing_dir, env.home / "labels.jsonl")
        simulate_s = elapsed()
        raw_mb = meter_json_mb(written.files)
        with stopwatch() as elapsed:
            failed = ingest_files(env.defs, env.instance, written.files)
        ingest_s = elapsed()
        if failed:
            raise RuntimeError(f"{len(failed)} ingest runs failed: {next(iter(failed.values()))}")
        with stopwatch() as elapsed:
            execute_job(env.defs, "weekly_job", env.instance, asset_selection=list(TRAINING_ASSETS))
        train_s = elapsed()
        # Local days, as `metrify run` plans them: those the batches touched (ops.ingest_days), in runs
        # of consecutive days; one run per job and range.
        ranges = contiguous_ranges(list(touched_days(env.settings, [f.batch_id for f in written.files]).days))
        timings = dict.fromkeys(DOWNSTREAM_JOBS, 0.0)
        for job in DOWNSTREAM_JOBS:
            for first, last in ranges:
                with stopwatch() as elapsed:
                    execute_job(env.defs, job, env.instance, tags=partition_range_tags(first, last))
                timings[job] += elapsed()
        readings = ingested_readings(env.settings)
    cycle_s = sum(timings.values())
    shown = ", ".join(f"{first}..{last}" for first, last in ranges)
    files = len(written.files)
    return {
        "meters x days": f"{meters} x {days}",
        "readings": readings,
        "raw-equivalent MB (meter JSON)": round(raw_mb, 1),
        "simulate s": round(simulate_s, 1),
        f"ingest s (landing -> ops, {files} batches)": round(ingest_s, 1),
        "ingest readings/s": round(readings / ingest_s),
        "train s (weekly_job, anomaly model)": round(train_s, 1),
        "local days refreshed": shown,
        "refresh s (anomaly, enrichment, dbt)": round(timings["refresh_job"], 1),
        "daily s (archive, report)": round(timings["daily_job"], 1),
        "cycle raw-equivalent MB/s": round(raw_mb / cycle_s, 2),
    }


def landing_batches(sim: Simulation, days: list[date], days_per_file: int) -> Simulation:
    """The simulation's messages of `days` only (no labels), one landing file per source for every
    `days_per_file` consecutive days (keyed by the first)."""
    chunks = [days[i : i + days_per_file] for i in range(0, len(days), days_per_file)]
    by_source = {
        source: {chunk[0]: [line for day in chunk for line in by_day.get(day, [])] for chunk in chunks}
        for source, by_day in sim.messages_by_day.items()
    }
    return replace(
        sim,
        messages_by_day={
            source: {day: lines for day, lines in by_day.items() if lines}
            for source, by_day in by_source.items()
        },
        labels=[],
    )


def ingest_directly(settings: Settings, files: list[LandedFile]) -> int:
    """What an ingest run does with a landing file (`process_batch`), without a Dagster run per file.
    Returns the meter readings read."""
    lake = Lake(settings.lake_url)
    readings = 0
    with postgres_resource(settings).connect() as conn:
        for landed in files:
            messages = landed.path.read_text().splitlines()
            result = process_batch(
                landing_spec(contract_for(landed.source), landed),
                messages,
                [landed.seq] * len(messages),
                lake,
                conn,
                now=pd.Timestamp.now(tz="UTC"),
                received_at=pd.Timestamp(landed.seq, unit="us", tz="UTC"),
            )
            if landed.source == "meter_readings":
                readings += result.ledger.records_in
    return readings


def settle(settings: Settings) -> None:
    """VACUUM ANALYZE everything: what autovacuum does between a day's batches in production, done
    before the timing so that it does not run (or not) in the middle of it, depending on table size."""
    with postgres_resource(settings).connect(autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


@dataclass(frozen=True)
class GrowthRun:
    history_days: int
    history_ingest_s: float  # set-up, not a figure: `process_batch` per weekly landing file
    history_refresh_s: float  # set-up: weekly_job, then refresh_job over the history in one run
    new_day_readings: int
    refresh_s: list[float]  # the timed refreshes of the new day
    dbt_s: list[float]  # of which the dbt build (the `metrify_dbt` step)

    @property
    def median_s(self) -> float:
        return statistics.median(self.refresh_s)


def refresh_new_day(sim: Simulation, history: list[date], new_day: date, repeats: int) -> GrowthRun:
    """In a fresh home: ingest (a landing file per source and week) and refresh `history`, then land
    and ingest `new_day`, settle the database and time the refresh of the new day's partition, as the
    hourly schedule runs it."""
    with bench_home(f"growth-{len(history)}d") as env:
        landing, labels = env.settings.landing_dir, env.home / "labels.jsonl"
        with stopwatch() as elapsed:
            past = write_simulation(landing_batches(sim, history, HISTORY_DAYS_PER_FILE), landing, labels)
            ingest_directly(env.settings, past.files)
        ingest_s = elapsed()
        with stopwatch() as elapsed:
            execute_job(env.defs, "weekly_job", env.instance, asset_selection=list(TRAINING_ASSETS))
            tags = partition_range_tags(history[0], history[-1])
            execute_job(env.defs, "refresh_job", env.instance, tags=tags)
        history_refresh_s = elapsed()
        new = write_simulation(landing_batches(sim, [new_day], 1), landing, labels)
        readings = ingest_directly(env.settings, new.files)
        settle(env.settings)
        times, dbt_times = [], []
        for _ in range(repeats):
            with stopwatch() as elapsed:
                tags = partition_range_tags(new_day, new_day)
                result = execute_job(env.defs, "refresh_job", env.instance, tags=tags)
            times.append(elapsed())
            dbt_times.append(step_seconds(env.instance, result.run_id, "metrify_dbt"))
    return GrowthRun(len(history), ingest_s, history_refresh_s, readings, times, dbt_times)


def step_seconds(instance: dg.DagsterInstance, run_id: str, step_key: str) -> float:
    """How long one step of a run took, from the run's event log."""
    stats = [s for s in instance.get_run_step_stats(run_id) if s.step_key == step_key]
    if not stats or stats[0].start_time is None or stats[0].end_time is None:
        return float("nan")
    return stats[0].end_time - stats[0].start_time


def growth(meters: int, repeats: int) -> tuple[dict[str, object], list[dict[str, object]]]:
    """The refresh of one new day after 7 and after 56 days of history: same meters, same new day."""
    if repeats < 1:
        return {GROWTH_FIGURE: "not run at this scale"}, []
    config = SimulationConfig(meters=meters, days=LONG_HISTORY + 1, fault_rate=0.001, seed=11)
    sim = simulate(config)
    days = sorted(sim.messages_by_day["meter_readings"])
    new_day = days[-1]
    runs = [refresh_new_day(sim, days[-1 - n : -1], new_day, repeats) for n in (SHORT_HISTORY, LONG_HISTORY)]
    short, long = runs
    ratio = round(long.median_s / short.median_s, 2)
    figures: dict[str, object] = {
        "growth: meters": meters,
        "growth: new day's readings": short.new_day_readings,
        "growth: timed refreshes per history (median)": repeats,
        f"refresh of 1 new day, {SHORT_HISTORY} d history s": round(short.median_s, 2),
        f"refresh of 1 new day, {LONG_HISTORY} d history s": round(long.median_s, 2),
        GROWTH_FIGURE: ratio,
        f"refresh growth within goal (<= {GROWTH_GOAL})": ratio <= GROWTH_GOAL,
    }
    rows: list[dict[str, object]] = [
        {
            "history days": run.history_days,
            "set-up: ingest s": round(run.history_ingest_s, 1),
            "set-up: train + refresh of the history s": round(run.history_refresh_s, 1),
            f"refresh of {new_day} s, each run": " / ".join(f"{t:.2f}" for t in run.refresh_s),
            "of which dbt build s": " / ".join(f"{t:.2f}" for t in run.dbt_s),
            "median s": round(run.median_s, 2),
        }
        for run in runs
    ]
    return figures, rows


def daily_cycle(scale: float) -> CaseResult:
    smoke = scale < 0.5
    figures = cycle(max(50, int(300 * scale)), SMOKE_CYCLE_DAYS if smoke else CYCLE_DAYS)  # 10,000: SCALE=34
    # A refresh run costs tens of seconds whatever its size, and the growth needs 2 + 2 x repeats.
    growth_figures, rows = growth(max(10, int(100 * scale)), 0 if smoke else min(3, round(2 * scale)))
    return CaseResult(
        name="daily_cycle",
        title="4. Daily batch cycle",
        figures={**figures, **growth_figures},
        rows=rows,
    )
