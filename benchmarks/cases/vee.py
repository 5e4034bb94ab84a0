"""Case 6, VEE part: how well the validation catalogue finds the simulator's faults, and how close
the estimates come to the values the benchmark removed.

Five weeks of simulated meters (faults at the default rate) are ingested day by day into an embedded
PostgreSQL and VEE'd day by day (`store.run_days`, as the day partitions run it, so like-day history
exists for the last week). Before ingest, one run of consecutive intervals per meter and day of the
last week is removed, cycling through gap lengths of 1 to 48 intervals, with its true values kept:
the estimation error per method and gap length is measured against them. A run is placed only on
intervals the simulator sent unaltered (no fault label): a faulted value is not the meter's
consumption (a spike's 655 kWh in a quarter-hour the register moved 40 kWh), so it is no truth to
measure an estimate against. Catalogue precision and recall compare each reason code with the
simulator's labels over the whole period.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import tempfile
from collections.abc import Collection, Iterable
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
    messages: list[str],
    rng: np.random.Generator,
    counter: Iterable[int],
    faulted: Collection[str],
) -> tuple[list[str], dict[str, tuple[float, int]]]:
    """Drop one run of intervals per meter from a day's messages -> (messages, key -> (true kWh, gap
    length)). The run is consecutive intervals, between two sent ones it adjoins, holding none of the
    `faulted` keys; a re-sent copy of an interval is the same interval (both copies go)."""
    records: dict[str, dict[str, dict[str, object]]] = {}
    for message in messages:
        try:
            body = json.loads(message)
        except json.JSONDecodeError:
            continue
        for record in body.get("records", [body]):
            if isinstance(record.get("energy_kwh"), float | int) and isinstance(
                record.get("interval_minutes"), int
            ):
                key = natural_key(record.get("meter_id"), record.get("reading_start"))
                records.setdefault(str(record.get("meter_id")), {}).setdefault(key, record)
    removed: dict[str, tuple[float, int]] = {}
    lengths = iter(counter)
    for by_key in records.values():
        ordered = sorted(by_key.items(), key=lambda item: item[0])
        length = next(lengths)
        at_us = np.array([pd.Timestamp(str(r["reading_start"])).value // 1000 for _, r in ordered])
        step_us = np.array([int(r["interval_minutes"]) * 60_000_000 for _, r in ordered])  # type: ignore[call-overload]
        clean = np.cumsum([0, *(key not in faulted for key, _ in ordered)])
        # follows[i]: interval i starts where interval i-1 ends (no interval missing between them)
        follows = np.cumsum([0, 0, *(at_us[1:] - at_us[:-1] == step_us[1:])])
        starts = [
            a
            for a in range(1, len(ordered) - length)
            if clean[a + length] - clean[a] == length and follows[a + length + 1] - follows[a] == length + 1
        ]
        if not starts:
            continue
        at = starts[int(rng.integers(len(starts)))]
        for key, record in ordered[at : at + length]:
            removed[key] = (float(record["energy_kwh"]), length)  # type: ignore[arg-type]
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


def _faulted(labels: list[dict[str, object]], interval: pd.Timedelta) -> set[str]:
    """Every interval a simulator fault touched: the labelled reading, a zero run's whole span, and the
    interval a clock-shifted reading should have filled."""
    keys = _truth(labels, "zero_run", interval) | _truth(labels, "clock_shift", interval)
    for label in labels:
        key = label["key"]
        if label["source"] == "meter_readings" and isinstance(key, dict) and "reading_start" in key:
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
    interval = pd.Timedelta(minutes=config.interval_minutes)
    faulted = _faulted(sim.labels, interval)
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
                    messages, gone = _remove_gaps(messages, rng, lengths, faulted)
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
