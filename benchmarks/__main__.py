"""`python -m benchmarks [--scale S] [--quick] [--only CASE ...] [--jobs N]`: run the cases, write
the results (`latest.*`, `quick.*` with --quick; a run of some cases only writes `latest-<case>...`
or `quick-<case>...`, so it never replaces a full run's results)."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.cases.api import api
from benchmarks.cases.daily_cycle import daily_cycle
from benchmarks.cases.detection import detection
from benchmarks.cases.forecasting import forecasting
from benchmarks.cases.freshness import freshness
from benchmarks.cases.storage import storage
from benchmarks.cases.throughput import throughput
from benchmarks.cases.validation import validation
from benchmarks.harness import (
    Case,
    run_cases,
    run_cases_in_processes,
    update_readme,
    write_case_json,
    write_results,
)

CASES: dict[str, Case] = {
    "throughput": throughput,
    "validation": validation,
    "daily_cycle": daily_cycle,
    "storage": storage,
    "detection": detection,
    "freshness": freshness,
    "api": api,
    "forecasting": forecasting,
}
# The order in which parallel runs start cases: longest first, so the short ones fill in beside them.
LONGEST_FIRST = (
    "freshness",
    "daily_cycle",
    "forecasting",
    "throughput",
    "validation",
    "detection",
    "api",
    "storage",
)
QUICK_SCALE = 0.05


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="size multiplier (1.0: under 10 minutes on 2 cores)"
    )
    parser.add_argument("--quick", action="store_true", help=f"every case small (scale {QUICK_SCALE})")
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="run only these cases")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="cases run at once, each in its own process (>1 for smoke runs: they share the cores)",
    )
    parser.add_argument("--case-json", type=Path, help=argparse.SUPPRESS)  # a case process's output
    args = parser.parse_args()
    scale = QUICK_SCALE if args.quick else args.scale
    chosen = {k: v for k, v in CASES.items() if not args.only or k in args.only}
    if args.case_json:
        write_case_json(run_cases(chosen, scale), args.case_json)
        return
    if args.jobs > 1:
        order = sorted(chosen, key=LONGEST_FIRST.index)
        by_name = {r.name: r for r in run_cases_in_processes(order, scale, args.jobs)}
        results = [by_name[name] for name in chosen]
    else:
        results = run_cases(chosen, scale)
    full = set(chosen) == set(CASES)
    name = ("quick" if args.quick else "latest") + ("" if full else "".join(f"-{c}" for c in chosen))
    json_path, md_path = write_results(results, scale, name=name)
    print(f"results: {json_path} and {md_path}")
    if not args.quick and full and update_readme(md_path.read_text()):
        print("README.md: Performance table updated")


if __name__ == "__main__":
    main()
