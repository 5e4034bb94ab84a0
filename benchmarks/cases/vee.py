"""Case 6, VEE part: how well the validation catalogue finds the simulator's faults, and how close
the estimates come to the values the benchmark removed.

Five weeks of simulated meters (faults at the default rate) are ingested day by day into an embedded
PostgreSQL and VEE'd day by day (`store.run_days`, as the day partitions run it, so like-day history
exists for the last week). Before ingest, one run of consecutive intervals per meter and day of the
last week is removed, cycling through gap lengths of 1 to 48 intervals, with its true values kept:
the estimation error per method and gap length is measured against them. Catalogue precision and
recall compare each reason code with the simulator's labels over the whole period.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import tempfile
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg

from benchmarks.cases.labels import natural_key, precision_recall
from benchmarks.harness import stopwatch
from metrify_assets.contracts import METER_READINGS
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.meters.registry import REGISTRY_COLUMNS
from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.process import VeeTotals
from metrify_assets.meters.vee.store import run_days, run_in_groups
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake
from metrify_assets.simulation import SimulationConfig, simulate
from metrify_assets.storage.embedded_server import stop_embedded

START = date(2026, 5, 4)  # a Monday, clear of DST changes
WEEKS = 5
GAP_LENGTHS = (1, 2, 4, 8, 16, 48)  # intervals: 15 min .. 12 h
NOW = pd.Timestamp("2030-01-01T00:00:00Z")
# fault kind (simulator label) -> VEE reason code meant to find it
CATALOGUE_SIGNAL = {
    "missing_interval": "gap",
    "spike": "spike",
    "negative_energy": "negative_consumption",
    "zero_run": "prolonged_zero",
    "duplicate_conflict": "duplicate_conflict",
    "clock_shift": "clock_fault",
}


def _remove_gaps(
    messages: list[str], day: date, rng: np.random.Generator, counter: Iterable[int]
) -> tuple[list[str], dict[str, tuple[float, int]]]:
    """Drop one run of intervals per meter from a day's messages -> (messages, key -> (true kWh, gap length))."""
    records: dict[str, list[dict[str, object]]] = {}
    for message in messages:
        try:
            body = json.loads(message)
        except json.JSONDecodeError:
            continue
        for record in body.get("records", [body]):
            records.setdefault(str(record.get("meter_id")), []).append(record)
    removed: dict[str, tuple[float, int]] = {}
    lengths = iter(counter)
    for meter, rows in records.items():
        ordered = sorted(
            (r for r in rows if isinstance(r.get("energy_kwh"), float | int)),
            key=lambda r: str(r["reading_start"]),
        )
        length = next(lengths)
        if len(ordered) <= length + 2:
            continue
        at = int(rng.integers(1, len(ordered) - length - 1))
        for record in ordered[at : at + length]:
            removed[natural_key(meter, record["reading_start"])] = (float(record["energy_kwh"]), length)  # type: ignore[arg-type]
    if not removed:
        return messages, removed
    kept: list[str] = []
    for message in messages:
        try:
            body = json.loads(message)
        except json.JSONDecodeError:
            kept.append(message)
            continue
        if "records" in body:
            body["records"] = [
                r
                for r in body["records"]
                if natural_key(r.get("meter_id"), r.get("reading_start")) not in removed
            ]
            kept.append(json.dumps(body))
        elif natural_key(body.get("meter_id"), body.get("reading_start")) not in removed:
            kept.append(message)
    return kept, removed


def _truth(labels: list[dict[str, object]], kind: str, interval: pd.Timedelta) -> set[str]:
    keys: set[str] = set()
    for label in labels:
        key = label["key"]
        if label["kind"] != kind or label["source"] != "meter_readings" or not isinstance(key, dict):
            continue
        if kind == "zero_run":
            detail = label["detail"]
            last = pd.Timestamp(str(detail["last"])).tz_convert("UTC")  # type: ignore[index]
            first = pd.Timestamp(str(key["reading_start"])).tz_convert("UTC")
            keys.update(natural_key(key["meter_id"], t) for t in pd.date_range(first, last, freq=interval))
        elif kind == "clock_shift":  # the interval the shifted reading should have filled
            keys.add(natural_key(key["meter_id"], label["detail"]["expected_reading_start"]))  # type: ignore[index]
        else:
            keys.add(natural_key(key["meter_id"], key["reading_start"]))
    return keys


def _rss_mib(field: str) -> float:
    """A line of /proc/self/status (VmRSS, VmHWM: the peak since the last reset) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _backfill(url: str, first: date, last: date, per_group: int) -> tuple[float, float, int, str]:
    """In a fresh process: VEE `first`..`last` as one run of `vee_meter_readings` does (empty VEE
    tables), in groups of `per_group` meter-days -> (seconds, peak MiB above the imports' footprint,
    groups, digest of the stored series). Linux resets the peak (VmHWM) on writing 5 to clear_refs."""
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE ops.vee_readings, ops.vee_days, ops.vee_audit")
        conn.commit()
        Path("/proc/self/clear_refs").write_text("5")
        before = _rss_mib("VmRSS")
        totals, groups = VeeTotals(), 0
        with stopwatch() as elapsed:
            for _, run in run_in_groups(conn, first, last, VeeConfig(), per_group, NOW):
                totals.add(run)
                groups += 1
                del run
            seconds = elapsed()
        peak = _rss_mib("VmHWM") - before
        rows = conn.execute(
            "SELECT meter_id, reading_start, energy_kwh, status, method, reasons FROM ops.vee_readings ORDER BY 1, 2"
        ).fetchall()
    return seconds, peak, groups, hashlib.sha256(repr(rows).encode()).hexdigest()


def backfill_memory(url: str, first: date, last: date, meters: int) -> dict[str, object]:
    """A backfill of the whole period as one group and in groups of 10 meters, each in a fresh
    process (a process keeps memory it freed, so a second run in it would show no peak)."""
    days = (last - first).days + 1
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        whole = pool.apply(_backfill, (url, first, last, meters * days))
        grouped = pool.apply(_backfill, (url, first, last, 10 * days))
    return {
        "VEE backfill at once: peak MiB, s": f"{whole[1]:.0f}, {whole[0]:.1f}",
        f"VEE backfill in {grouped[2]} groups of 10 meters: peak MiB, s": f"{grouped[1]:.0f}, {grouped[0]:.1f}",
        "VEE backfill peak, groups / at once": round(grouped[1] / max(whole[1], 1.0), 3),
        "VEE backfill series identical in groups": grouped[3] == whole[3],
    }


def _load_registry(conn: psycopg.Connection, meters: pd.DataFrame) -> None:
    cols = ", ".join(REGISTRY_COLUMNS)
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO ops.meters ({cols}) VALUES ({', '.join(['%s'] * len(REGISTRY_COLUMNS))})",
            list(meters[list(REGISTRY_COLUMNS)].itertuples(index=False, name=None)),
        )
    conn.commit()


def vee_quality(scale: float) -> tuple[list[dict[str, object]], dict[str, object]]:
    """(rows per fault kind and per estimation method x gap length, headline figures)."""
    weeks = WEEKS if scale >= 0.5 else 2
    config = SimulationConfig(meters=max(10, int(60 * scale)), days=7 * weeks, start=START, seed=21)
    sim = simulate(config)
    rng = np.random.default_rng(5)
    last_week = {START + timedelta(days=7 * (weeks - 1) + i) for i in range(7)}
    lengths = iter(np.resize(np.array(GAP_LENGTHS), config.meters * 7 * len(GAP_LENGTHS)).tolist())
    removed: dict[str, tuple[float, int]] = {}
    data_dir = Path(tempfile.mkdtemp(prefix="metrify-bench-vee-"))
    resource = PostgresResource(data_dir=str(data_dir / "pg"))
    lake = Lake(str(data_dir / "lake"))
    cfg = VeeConfig()
    try:
        with resource.connect() as conn:
            _load_registry(conn, sim.meters)
            vee_seconds = 0.0
            for day, messages in sorted(sim.messages_by_day["meter_readings"].items()):
                if day in last_week:
                    messages, gone = _remove_gaps(messages, day, rng, lengths)
                    removed.update(gone)
                spec = BatchSpec(METER_READINGS, f"vee-bench-{day}", "landing", f"{day}.jsonl", day)
                process_batch(spec, messages, [1] * len(messages), lake, conn, NOW, alert_threshold=0)
                conn.commit()
            with stopwatch() as elapsed:
                for i in range(7 * weeks):
                    day = START + timedelta(days=i)
                    run_days(conn, day, day, cfg, now=NOW)
                vee_seconds = elapsed()
            series = pd.DataFrame(
                conn.execute(
                    "SELECT meter_id, reading_start, local_date, energy_kwh, status, method, reasons "
                    "FROM ops.vee_readings"
                ).fetchall(),
                columns=[
                    "meter_id",
                    "reading_start",
                    "local_date",
                    "energy_kwh",
                    "status",
                    "method",
                    "reasons",
                ],
            )
            audit = conn.execute("SELECT count(*) FROM ops.vee_audit").fetchone()
            ready = conn.execute("SELECT avg(billing_ready::int) FROM ops.vee_days").fetchone()
        backfill = backfill_memory(
            resource.get_url(), START, START + timedelta(days=config.days - 1), config.meters
        )
    finally:
        stop_embedded(data_dir / "pg")
        shutil.rmtree(data_dir, ignore_errors=True)

    series["key"] = [
        natural_key(m, t) for m, t in zip(series["meter_id"], series["reading_start"], strict=True)
    ]
    interval = pd.Timedelta(minutes=config.interval_minutes)
    rows: list[dict[str, object]] = []
    reasons = series["reasons"].str.split(",")
    for kind, code in CATALOGUE_SIGNAL.items():
        truth = _truth(sim.labels, kind, interval)
        if kind == "missing_interval":
            truth |= set(removed)  # the benchmark's own gaps are gaps too
        predicted = set(series.loc[reasons.map(lambda r, c=code: c in r), "key"])
        rows.append(
            {
                "source": "meter_readings",
                "fault": kind,
                "signal": f"VEE {code}",
                **precision_recall(truth, predicted),
            }
        )

    truth_frame = pd.DataFrame(
        [(k, v, n) for k, (v, n) in removed.items()], columns=["key", "true_kwh", "gap_intervals"]
    )
    estimates = series.merge(truth_frame, on="key")
    estimates = estimates[estimates["status"] == "estimated"]
    errors = (estimates["energy_kwh"] - estimates["true_kwh"]).abs()
    estimates = estimates.assign(
        abs_error=errors,
        abs_pct=errors / estimates["true_kwh"].abs().where(estimates["true_kwh"].abs() > 0.05),
    )
    for (method, gap), group in estimates.groupby(["method", "gap_intervals"]):
        rows.append(
            {
                "source": "meter_readings",
                "fault": f"estimation, gap of {gap} x 15 min",
                "signal": str(method),
                "estimated": len(group),
                "mae_kwh": round(float(group["abs_error"].mean()), 4),
                "mape_pct": round(100 * float(group["abs_pct"].mean()), 1),
            }
        )
    statuses = series["status"].value_counts()
    figures: dict[str, object] = {
        "VEE meters x days": f"{config.meters} x {config.days}",
        "VEE intervals": len(series),
        "VEE estimated share": round(float(statuses.get("estimated", 0)) / max(len(series), 1), 4),
        "VEE audit rows": int(audit[0]) if audit else 0,
        "VEE billing-ready meter-days": round(float(ready[0] or 0.0), 3) if ready else 0.0,
        "VEE seconds per meter-day": round(vee_seconds / max(config.meters * config.days, 1), 4),
        "VEE estimation MAE (kWh), all removed intervals": round(float(errors.mean()), 4)
        if len(errors)
        else None,
        "VEE estimates recovered": f"{len(estimates)} of {len(removed)} removed",
        **backfill,
    }
    return rows, figures
