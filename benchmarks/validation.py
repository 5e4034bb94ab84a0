"""Validation throughput: record rules + GX suites on 100,000 and 1,000,000 meter readings.

Run: `.venv/bin/python -m benchmarks.validation [--sizes 100000 1000000] [--repeat 3]`. Prints the
figures and writes them to `benchmarks/results/validation.json`. Not a test: absolute numbers are for
the machine described in the same file. Records are decoded from contract-v1 JSON first (not timed),
so the rules and suites see exactly what the ingest gives them; 1 % of readings carry faults.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.harness import RESULTS_DIR, machine
from metrify_assets.contracts import METER_READINGS
from metrify_assets.ingestion.decode import decode
from metrify_assets.quality import data_docs, gx, rules

NOW = pd.Timestamp("2026-04-01T00:00:00Z")
START = pd.Timestamp("2026-03-30T00:00:00Z")


def messages(rows: int, seed: int = 7) -> list[str]:
    """`rows` quarter-hour readings of ceil(rows/96) meters over one day; 0.5 % negative, 0.5 % high voltage."""
    rng = np.random.default_rng(seed)
    slots = 96
    energy = rng.gamma(2.0, 0.15, rows).round(4)
    fault = rng.random(rows)
    energy[fault < 0.005] *= -1
    voltage = np.where((fault >= 0.005) & (fault < 0.01), 262.0, rng.normal(231, 2, rows).round(1))
    out = []
    for i in range(rows):
        start = START + pd.Timedelta(minutes=15 * (i % slots))
        out.append(
            json.dumps(
                {
                    "meter_id": f"MTR-{i // slots:06d}",
                    "reading_start": start.isoformat(),
                    "interval_minutes": 15,
                    "energy_kwh": float(energy[i]),
                    "voltage_v": float(voltage[i]),
                    "power_factor": 0.95,
                }
            )
        )
    return out


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median seconds over `repeat` runs, and the last result."""
    seconds, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def rates(rows: int, seconds: float) -> dict[str, float]:
    return {
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds),
        "ms_per_100k_rows": round(seconds * 1000 * 100_000 / rows, 1),
    }


def measure(rows: int, repeat: int) -> dict[str, Any]:
    lines = messages(rows)
    start = time.perf_counter()
    records = decode(METER_READINGS, lines, [1] * rows).records
    decode_s = time.perf_counter() - start
    rules_s, outcome = timed(lambda: rules.evaluate("meter_readings", records, NOW), repeat)
    accepted = records[(outcome.decision != "reject").to_numpy()]
    raw_s, raw = timed(lambda: gx.validate("raw_meter_readings", records), repeat)
    validated_s, validated = timed(lambda: gx.validate("validated_meter_readings", accepted), repeat)
    total = rules_s + raw_s + validated_s
    return {
        "rows": rows,
        "decisions": outcome.decision_counts(),
        "gx_success": {"raw": raw.success, "validated": validated.success},
        "decode_untimed_s": round(decode_s, 2),
        "rules": rates(rows, rules_s),
        "gx_raw": rates(rows, raw_s),
        "gx_validated": rates(len(accepted), validated_s),
        "rules_plus_gx": rates(rows, total),
    }


def warm_up() -> float:
    """Build the GX context and suites once (per process), so the measurements see the steady state."""
    start = time.perf_counter()
    lines = messages(96)  # one meter-day
    gx.validate("validated_meter_readings", decode(METER_READINGS, lines, [1] * len(lines)).records)
    return round(time.perf_counter() - start, 2)


def data_docs_cost(rows: int) -> dict[str, float]:
    """What a Data Docs site per batch would add to the hot path (why the report asset builds it)."""
    records = decode(METER_READINGS, messages(rows), [1] * rows).records
    with tempfile.TemporaryDirectory() as site:
        start = time.perf_counter()
        data_docs.build_site({"validated_meter_readings": records}, Path(site))
        build_s = time.perf_counter() - start
    validate_s, _ = timed(lambda: gx.validate("validated_meter_readings", records), 3)
    return {"rows": rows, "site_build_s": round(build_s, 2), "validation_only_s": round(validate_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "validation.json")
    args = parser.parse_args()
    warmup = warm_up()
    results = [measure(rows, args.repeat) for rows in args.sizes]
    report = {
        "machine": machine(),
        "gx_first_use_s": round(warmup, 2),
        "sizes": results,
        "data_docs_per_batch": data_docs_cost(min(args.sizes)),
    }
    for r in results:
        print(f"{r['rows']:>9,} rows: " + "; ".join(
            f"{stage} {r[stage]['rows_per_s']:,} rows/s ({r[stage]['ms_per_100k_rows']} ms/100k)"
            for stage in ("rules", "gx_raw", "gx_validated", "rules_plus_gx")
        ))  # fmt: skip
    print(f"GX first use {report['gx_first_use_s']} s; Data Docs per batch: {report['data_docs_per_batch']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
