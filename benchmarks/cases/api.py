"""Case 7: the data API over real HTTP, beside the framework's ceiling on this machine.

uvicorn serves the API in a process of its own (`uvicorn --factory ...app_from_env`, as a deployment
runs it) on the embedded PostgreSQL, with and without Redis; a client in this process sends requests
from `CONCURRENCY` threads. Measured in the same run:
- the ceiling: a bare FastAPI endpoint that returns a constant (`benchmarks/bare_api.py`), served the
  same way, so every figure below reads against what FastAPI + uvicorn + this client can do here;
- ingestion: `POST /v1/meter_readings` with one record per request, and with batches of
  `BATCH_RECORDS`, as requests/s and records/s (schema validation, the landing file, `ops.api_batches`);
- the latest reading of a random meter (`GET /v1/meters/{id}/latest`): p50 and p99 latency with the
  cache (Redis, warmed) and without (PostgreSQL).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks.cases.daily_cycle import bench_home
from benchmarks.harness import CaseResult
from metrify_assets.resources.build import postgres_resource
from metrify_platform.redis_server import RedisServer

CONCURRENCY = 8
BATCH_RECORDS = 500
SECRET = "benchmark-secret-of-at-least-32-bytes!!"
READY_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def uvicorn_process(target: str, env: dict[str, str], factory: bool) -> Iterator[str]:
    """`uvicorn target` in its own process on a free port; yields the base URL once it answers."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
    args += ["--log-level", "warning", "--no-access-log", *(["--factory"] if factory else [])]
    proc = subprocess.Popen(args, env={**os.environ, **env}, cwd=Path(__file__).parents[2])
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn {target} did not start (exit {proc.poll()})")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def load(
    base: str, seconds: float, request: Callable[[httpx.Client, random.Random], httpx.Response]
) -> list[float]:
    """Requests from `CONCURRENCY` threads for `seconds`; the latency (s) of each, all must succeed."""
    latencies: list[list[float]] = [[] for _ in range(CONCURRENCY)]
    failures: list[str] = []
    stop = time.monotonic() + seconds

    def worker(n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(base_url=base, timeout=30) as client:
            while time.monotonic() < stop:
                started = time.perf_counter()
                response = request(client, rng)
                latencies[n].append(time.perf_counter() - started)
                if response.status_code >= 300:
                    failures.append(f"{response.status_code}: {response.text[:200]}")
                    return

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return [x for per in latencies for x in per]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def seed_readings(home_settings: Any, meters: int) -> list[str]:
    """A day of quarter-hours for `meters` meters, written straight into ops.meter_readings."""
    ids = [f"MTR-{n:05d}" for n in range(meters)]
    with postgres_resource(home_settings).connect() as conn:
        conn.execute(
            "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, record_version, "
            "batch_id) SELECT m, timestamptz '2026-06-01 00:00Z' + q * interval '15 minutes', 15, 0.25, 1, 'bench' "
            "FROM unnest(%s::text[]) AS m, generate_series(0, 95) AS q",
            (ids,),
        )
    return ids


def reading(meter: str, minute: int) -> dict[str, Any]:
    start = f"2026-07-01T{minute // 60 % 24:02d}:{minute % 60:02d}:00+00:00"
    return {"meter_id": meter, "reading_start": start, "interval_minutes": 15, "energy_kwh": 0.3}


def api(scale: float) -> CaseResult:
    from metrify_assets.serving.auth import issue_token

    seconds = max(2.0, 6.0 * scale)
    meters = max(100, int(2000 * scale))
    token = issue_token(SECRET, "bench", ["admin"], timedelta(hours=2))
    auth = {"Authorization": f"Bearer {token}"}
    rows: list[dict[str, Any]] = []

    def record(what: str, latencies: list[float], records_per_request: int = 1) -> dict[str, Any]:
        rate = len(latencies) / seconds
        row = {
            "measure": what,
            "requests": len(latencies),
            "requests/s": round(rate),
            "records/s": round(rate * records_per_request),
            "p50 ms": round(percentile(latencies, 0.5) * 1000, 2),
            "p99 ms": round(percentile(latencies, 0.99) * 1000, 2),
        }
        rows.append(row)
        return row

    with uvicorn_process("benchmarks.bare_api:app", {}, factory=False) as bare:
        ceiling = record(
            "bare FastAPI constant (ceiling)", load(bare, seconds, lambda c, r: c.get("/constant"))
        )

    with bench_home("api") as env, RedisServer() as redis:
        ids = seed_readings(env.settings, meters)
        base_env = {
            "METRIFY_HOME": str(env.home),
            "METRIFY_API_JWT_SECRET": SECRET,
            "METRIFY_API_RATE_LIMIT": str(10**9),
        }
        target = "metrify_assets.serving.app:app_from_env"

        def latest(client: httpx.Client, rng: random.Random) -> httpx.Response:
            return client.get(f"/v1/meters/{rng.choice(ids)}/latest", headers=auth)

        with uvicorn_process(target, base_env, factory=True) as base:
            uncached = record("latest reading, PostgreSQL (no Redis)", load(base, seconds, latest))
            single = record(
                "ingest, 1 record per request",
                load(
                    base,
                    seconds,
                    lambda c, r: c.post(
                        "/v1/meter_readings", json=reading(r.choice(ids), r.randrange(1440)), headers=auth
                    ),
                ),
            )
            batch_body = {"records": [reading(ids[i % len(ids)], i) for i in range(BATCH_RECORDS)]}
            batched = record(
                f"ingest, {BATCH_RECORDS} records per request",
                load(base, seconds, lambda c, r: c.post("/v1/meter_readings", json=batch_body, headers=auth)),
                BATCH_RECORDS,
            )
        with uvicorn_process(target, {**base_env, "REDIS_URL": redis.url}, factory=True) as base:
            with httpx.Client(base_url=base, timeout=30) as client:  # warm: every meter's latest in Redis
                for meter in ids:
                    client.get(f"/v1/meters/{meter}/latest", headers=auth)
            cached = record("latest reading, Redis cache", load(base, seconds, latest))

    figures = {
        "concurrency (client threads)": CONCURRENCY,
        "seconds per measure": seconds,
        "meters": meters,
        "bare FastAPI requests/s (ceiling)": ceiling["requests/s"],
        "ingest requests/s (1 record)": single["requests/s"],
        "ingest records/s (1 record per request)": single["records/s"],
        f"ingest requests/s ({BATCH_RECORDS} records)": batched["requests/s"],
        f"ingest records/s ({BATCH_RECORDS} records per request)": batched["records/s"],
        "ingest single / ceiling (requests)": round(single["requests/s"] / ceiling["requests/s"], 2),
        "latest p50 ms (PostgreSQL)": uncached["p50 ms"],
        "latest p99 ms (PostgreSQL)": uncached["p99 ms"],
        "latest p50 ms (Redis)": cached["p50 ms"],
        "latest p99 ms (Redis)": cached["p99 ms"],
        "latest requests/s, Redis / PostgreSQL": round(
            cached["requests/s"] / max(1, uncached["requests/s"]), 2
        ),
        "ceiling p50 ms": ceiling["p50 ms"],
    }
    return CaseResult(name="api", title="7. Data API", figures=figures, rows=rows)
