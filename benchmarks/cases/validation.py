"""Case 2: record rules plus GX suites on 100,000 and 1,000,000 rows (scaled), rows/s and ms/100k."""

from __future__ import annotations

from benchmarks.harness import CaseResult
from benchmarks.validation import measure, warm_up


def validation(scale: float) -> CaseResult:
    warm = warm_up()
    sizes = [max(10_000, int(100_000 * scale)), max(20_000, int(1_000_000 * scale))]
    rows = []
    for size in sizes:
        result = measure(size, repeat=3)
        for stage in ("rules", "gx_raw", "gx_validated", "rules_plus_gx"):
            rows.append({"rows": size, "stage": stage, **result[stage]})
    big = result["rules_plus_gx"]  # the largest size, measured last
    return CaseResult(
        name="validation",
        title="2. Validation",
        figures={
            "GX first use s (once per process)": warm,
            f"rules + GX rows/s at {sizes[-1]:,} rows": big["rows_per_s"],
            f"rules + GX ms per 100k rows at {sizes[-1]:,} rows": big["ms_per_100k_rows"],
        },
        rows=rows,
    )
