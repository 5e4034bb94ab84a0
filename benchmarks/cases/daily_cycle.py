"""Case 4: the daily batch cycle (anomaly scores, enrichment, dbt marts, archive tier) on N meters x 7
days in the embedded PostgreSQL, as raw-equivalent MB/s; ingestion into `ops` is timed beside it."""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path

from benchmarks.harness import CaseResult, stopwatch
from metrify_assets.definitions import defs as load_defs
from metrify_assets.env import resolve_settings
from metrify_assets.orchestration.instance import execute_job, ingest_files, local_instance
from metrify_assets.resources.build import postgres_resource
from metrify_assets.simulation import SimulationConfig, simulate, write_simulation
from metrify_assets.warehouse.assets import partition_range_tags


def daily_cycle(scale: float) -> CaseResult:
    meters = max(50, int(300 * scale))  # 10,000 meters: SCALE=34
    home = Path(tempfile.mkdtemp(prefix="metrify-bench-"))
    os.environ["METRIFY_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    settings = resolve_settings()
    instance = local_instance(settings)
    defs = load_defs()
    config = SimulationConfig(meters=meters, days=7, fault_rate=0.005, seed=3)
    with stopwatch() as elapsed:
        sim = simulate(config)
        written = write_simulation(sim, settings.landing_dir, home / "labels.jsonl")
    simulate_s = elapsed()
    raw_mb = sum(f.path.stat().st_size for f in written.files if f.source == "meter_readings") / 1e6
    with stopwatch() as elapsed:
        ingest_files(defs, instance, written.files)
    ingest_s = elapsed()
    # The marts are partitioned by local day: the simulated days, +/- one for local-vs-UTC dates.
    days = partition_range_tags(config.start - timedelta(days=1), config.start + timedelta(days=7))
    timings: dict[str, float] = {}
    for job in ("refresh_job", "daily_job"):
        with stopwatch() as elapsed:
            execute_job(defs, job, instance, tags=days if job == "refresh_job" else None)
        timings[job] = elapsed()
    cycle_s = sum(timings.values())
    with postgres_resource(settings).connect() as conn:
        row = conn.execute(
            "SELECT sum(records_in) FROM ops.ingest_ledger WHERE source = 'meter_readings'"
        ).fetchone()
    readings = int(row[0]) if row and row[0] else 0
    return CaseResult(
        name="daily_cycle",
        title="4. Daily batch cycle",
        figures={
            "meters x days": f"{meters} x 7",
            "readings": readings,
            "raw-equivalent MB (meter JSON)": round(raw_mb, 1),
            "simulate s": round(simulate_s, 1),
            "ingest s (landing -> ops, 7 batches)": round(ingest_s, 1),
            "ingest readings/s": round(readings / ingest_s),
            "refresh s (anomaly, enrichment, dbt)": round(timings["refresh_job"], 1),
            "daily s (archive, report)": round(timings["daily_job"], 1),
            "cycle raw-equivalent MB/s": round(raw_mb / cycle_s, 2),
        },
    )
