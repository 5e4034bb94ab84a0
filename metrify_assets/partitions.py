"""The day partitions every downstream asset shares, Python and dbt alike, so one lineage graph
backfills as one.

A partition is a local calendar day: for meter readings the meter's own timezone (UTC for a meter
not in the registry), for grid and weather samples the UTC day. Today is a partition too
(`end_offset=1`), so the hourly refresh can build the day in progress.
"""

from __future__ import annotations

import warnings
from datetime import date, timedelta

import dagster as dg

# `backfill_policy` on `@asset` is marked beta in dagster 1.13, though dagster-dbt sets it too; the
# policy is what lets one run cover a range of days, so the warning says nothing actionable here.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

# From far enough back for historical imports (the UCI household sample starts in 2006).
DAYS = dg.DailyPartitionsDefinition(start_date="2000-01-01", end_offset=1)

# Every partitioned Python asset handles a range of days in one run, as dbt does.
SINGLE_RUN = dg.BackfillPolicy.single_run()


def partition_days(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """The run's first and last (inclusive) day."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()


TRIGGER_TAG = "metrify/trigger"  # what started a run: cli, demo, late_days (runs the CLI and sensors tag)


def partition_range_tags(first: date, last: date) -> dict[str, str]:
    """Run tags that make one run cover the days `first`..`last` (a single-run backfill's tags)."""
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }


def contiguous_ranges(days: set[date] | list[date]) -> list[tuple[date, date]]:
    """Sorted days grouped into runs of consecutive days: one run each, never a gap filled in."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and day == ranges[-1][1] + timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def ranges_text(ranges: list[tuple[date, date]]) -> str:
    """Day ranges as people read them: "2026-03-01..2026-03-03, 2026-03-05"."""
    return ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in ranges)


def overlaps(a: tuple[date, date], b: tuple[date, date]) -> bool:
    """Whether two inclusive day ranges share a day."""
    return a[0] <= b[1] and b[0] <= a[1]
