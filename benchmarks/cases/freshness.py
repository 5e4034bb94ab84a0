"""Case 3: freshness, one reading produced to Kafka until it is queryable in ops.meter_readings.

The sensor runs under `dagster-daemon run` (default run launcher and coordinator: each run is a new
process), so every trial pays what production pays: waiting for a tick, queueing, launching, the
run. Its floor, measured in the same run, is one `process_batch` of one reading called directly.
Each trial starts at a random moment of the tick interval, so p50/p95 sample the tick phase.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg

from benchmarks.harness import CaseResult, stopwatch
from benchmarks.kafka_env import KafkaBench, kafka_bench
from metrify_assets.contracts import METER_READINGS
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.ingestion.sensors import BATCH_TAG
from metrify_assets.orchestration import local_instance
from metrify_assets.resources import LakeResource

SOURCE = METER_READINGS.source
INTERVAL_S = 5
PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = f"""\
load_from:
  - python_module:
      module_name: benchmarks.freshness_location
      attribute: defs
      working_directory: {PROJECT_ROOT}
      location_name: metrify
"""


def reading(meter_id: str) -> str:
    """One valid contract-v1 reading of the last complete quarter hour (neither late nor in the future)."""
    start = pd.Timestamp.now(tz="UTC").floor("15min") - pd.Timedelta(minutes=15)
    return json.dumps(
        {
            "meter_id": meter_id,
            "reading_start": start.isoformat(),
            "interval_minutes": 15,
            "energy_kwh": 0.21,
            "source": "benchmark",
        }
    )


def direct_ms(env: KafkaBench, repeat: int = 5) -> float:
    """Median ms of `process_batch` on one reading in this process (after one warm-up call for GX)."""
    lake = LakeResource(url=env.settings.lake_url).get_lake()
    times = []
    with env.postgres.connect() as conn:
        for i in range(repeat + 1):
            spec = BatchSpec(METER_READINGS, f"bench-direct-{i}", "kafka", f"bench-direct-{i}", date.today())
            with stopwatch() as elapsed:
                process_batch(
                    spec, [reading(f"BENCH-DIRECT-{i}")], [0], lake, conn, pd.Timestamp.now(tz="UTC")
                )
            times.append(elapsed() * 1000)
    return statistics.median(times[1:])


def start_daemon(env: KafkaBench) -> subprocess.Popen[bytes]:
    """`dagster-daemon run` on the benchmark's instance and code location, in its own process group."""
    local_instance(env.settings)  # writes dagster.yaml: default run launcher and coordinator
    workspace = env.home / "workspace.yaml"
    workspace.write_text(WORKSPACE)
    environ = {
        **os.environ,
        "METRIFY_POSTGRES_URL": env.postgres.get_url(),
        "METRIFY_BENCH_SENSOR_INTERVAL": str(INTERVAL_S),
    }
    with (env.home / "daemon.log").open("wb") as log:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
            env=environ,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_daemon(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """SIGTERM to the daemon's group, then SIGKILL if it lingers; then SIGTERM again for what it left
    behind in its group (a code server it restarted outlives the daemon until its heartbeat times out)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
        while time.monotonic() < deadline:  # signal 0 raises ProcessLookupError once the group is gone
            os.killpg(proc.pid, 0)
            time.sleep(0.5)


def trial(
    env: KafkaBench, conn: psycopg.Connection, meter_id: str, timeout: float = 180.0
) -> tuple[float, str]:
    """Seconds from send until the reading's row is visible, and the batch id that wrote it."""
    with env.kafka.producer() as producer:
        sent = time.perf_counter()
        producer.send(env.kafka.topic(SOURCE), key=meter_id.encode(), value=reading(meter_id).encode()).get(
            30
        )
    while time.perf_counter() - sent < timeout:
        row = conn.execute(
            "SELECT batch_id FROM ops.meter_readings WHERE meter_id = %s", (meter_id,)
        ).fetchone()
        if row:
            return time.perf_counter() - sent, str(row[0])
        time.sleep(0.05)
    raise TimeoutError(f"{meter_id} not in ops.meter_readings after {timeout:.0f}s (see daemon.log)")


def run_phases(
    instance: dg.DagsterInstance, batch_id: str, sent_at: float, latency: float
) -> dict[str, float]:
    """Where a trial's time went: until the run was created (tick), until its process started the run
    (queue, launch, loading the code location), then the run until the row was visible."""
    records = instance.get_run_records(filters=dg.RunsFilter(tags={BATCH_TAG: batch_id}), limit=1)
    started = records[0].start_time if records else None
    if started is None:
        return {}
    created = records[0].create_timestamp.timestamp()
    return {
        "until run created s": round(created - sent_at, 2),
        "queued + launched s": round(started - created, 2),
        "run until row visible s": round(sent_at + latency - started, 2),
    }


def freshness(scale: float) -> CaseResult:
    trials = max(3, round(20 * scale))
    rng = random.Random(3)
    rows: list[dict[str, object]] = []
    with kafka_bench("freshness") as env:
        floor_ms = direct_ms(env)
        daemon = start_daemon(env)
        try:
            instance = local_instance(env.settings)
            with env.postgres.connect(autocommit=True) as conn:
                trial(env, conn, "BENCH-WARMUP")  # code server start and first tick: not a trial
                for i in range(trials):
                    time.sleep(rng.uniform(0, INTERVAL_S))
                    sent_at = time.time()
                    latency, batch_id = trial(env, conn, f"BENCH-FRESH-{i:03d}")
                    rows.append(
                        {
                            "trial": i + 1,
                            "latency s": round(latency, 2),
                            **run_phases(instance, batch_id, sent_at, latency),
                        }
                    )
        finally:
            stop_daemon(daemon)
    latencies = sorted(float(r["latency s"]) for r in rows)  # type: ignore[arg-type]
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20, method="inclusive")[18]
    return CaseResult(
        name="freshness",
        title="3. Freshness Kafka -> ops.meter_readings",
        figures={
            "trials": trials,
            "sensor minimum interval s": INTERVAL_S,
            "p50 s": round(p50, 2),
            "p95 s": round(p95, 2),
            "min / max s": f"{latencies[0]:.2f} / {latencies[-1]:.2f}",
            "floor: process_batch of 1 reading ms": round(floor_ms, 1),
            "p50 / floor": round(p50 * 1000 / floor_ms, 1),
        },
        rows=rows,
    )
