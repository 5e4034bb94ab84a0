"""VEE of a run's days as pure steps: grid -> validation -> estimation and editing -> day gate.

The grid reaches one day either side of the run's days so that estimates at midnight interpolate
from the neighbouring day's readings; only the run's days are returned. History (average daily use,
like-day profiles) comes in as frames, so every step is testable without a database.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from metrify_assets.meters.vee.catalogue import VeeConfig, validate
from metrify_assets.meters.vee.estimation import LIKE_DAY_COLUMNS, estimate, severity_mask
from metrify_assets.meters.vee.gate import STATUSES, summarise_days
from metrify_assets.meters.vee.grid import build_grid, meter_days

if TYPE_CHECKING:  # the store runs these steps and returns a VeeRun
    from metrify_assets.meters.vee.store import VeeRun


@dataclass(frozen=True)
class Validated:
    first: date
    last: date
    grid: pd.DataFrame
    masks: pd.DataFrame


@dataclass(frozen=True)
class VeeResult:
    series: pd.DataFrame  # estimation.SERIES_COLUMNS, the run's days only
    days: pd.DataFrame  # gate.DAY_COLUMNS
    masks: pd.DataFrame  # the catalogue's masks of the series' rows

    def status_counts(self) -> dict[str, int]:
        counts = self.series["status"].value_counts()
        return {s: int(counts.get(s, 0)) for s in STATUSES}

    def reason_counts(self) -> dict[str, int]:
        return {str(c): int(n) for c, n in self.masks.sum().items() if n}


METER_DAYS_PER_GROUP = 10_000  # about 600 MiB of frames at the ~62 KiB a meter-day measured (docs/quality.md)


def meter_groups(meters: list[str], days: int, meter_days_per_group: int) -> list[list[str]]:
    """`meters` in groups of about `meter_days_per_group` meter-days over `days` days (one meter at
    least): everything VEE does is per meter, so groups give the result of one run over all."""
    size = max(1, meter_days_per_group // max(days, 1))
    return [meters[i : i + size] for i in range(0, len(meters), size)]


@dataclass
class VeeTotals:
    """What a run reports, summed over the results of its groups of meters as each is dropped: a
    backfill holds one group's frames at a time, not the whole range's."""

    meter_days: int = 0
    intervals: int = 0
    billing_ready: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    methods: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    gate_failures: Counter[str] = field(default_factory=Counter)  # meter-days per failed gate test
    audit_rows: int = 0
    unplaced: dict[str, int] = field(default_factory=dict)  # per batch: one read by two stretches counts once

    def add(self, run: VeeRun) -> None:
        result, days = run.result, run.result.days
        self.audit_rows += run.audit_rows
        self.unplaced.update(run.unplaced)
        self.meter_days += len(days)
        self.intervals += len(result.series)
        self.billing_ready += int(days["billing_ready"].sum()) if len(days) else 0
        self.statuses.update(result.status_counts())
        self.methods.update(_counts(result.series["method"]))
        self.reasons.update(result.reason_counts())
        failed = days["gate_failures"][days["gate_failures"] != ""] if len(days) else pd.Series(dtype=str)
        self.gate_failures.update(_counts(failed.str.split(",").explode()))

    def status_counts(self) -> dict[str, int]:
        return {s: self.statuses[s] for s in STATUSES}

    @property
    def unplaced_quarantined(self) -> int:
        return sum(self.unplaced.values())


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(v): int(n) for v, n in values.value_counts().items()}


def validate_days(
    candidates: pd.DataFrame,
    meters: pd.DataFrame,
    first: date,
    last: date,
    now: pd.Timestamp,
    history_avg_kwh: pd.Series,
    config: VeeConfig,
    reporting_from: pd.Series | None = None,
) -> Validated:
    """Build the grid of `first - 1 .. last + 1` and run the catalogue over it (`reporting_from`:
    the instant each meter is expected to report from, `grid.meter_days`)."""
    days = meter_days(
        candidates,
        meters,
        first - timedelta(days=1),
        last + timedelta(days=1),
        config.default_interval_minutes,
        reporting_from,
    )
    grid = build_grid(days, candidates, now)
    return Validated(first, last, grid, validate(grid, history_avg_kwh, config))


def like_day_requests(validated: Validated, config: VeeConfig) -> pd.DataFrame:
    """(meter_id, local_date) of the days that may need like-day profiles: more to estimate than
    one interpolation can bridge."""
    grid = validated.grid
    if grid.empty:
        return pd.DataFrame(columns=["meter_id", "local_date"])
    masks = validated.masks
    wanted = (grid["value"].isna().to_numpy() | severity_mask(masks, config, "estimate")) & grid[
        "due"
    ].to_numpy(dtype=bool)
    minutes = (wanted * grid["interval_minutes"]).groupby([grid["meter_id"], grid["local_date"]]).sum()
    wanted = minutes[minutes > config.max_interpolation_minutes]
    return wanted.reset_index()[["meter_id", "local_date"]]


def finish(validated: Validated, like_day: pd.DataFrame, config: VeeConfig) -> VeeResult:
    """Estimate and edit, keep the run's days, summarise them through the billing gate."""
    grid, masks = validated.grid, validated.masks
    if like_day.empty:
        like_day = pd.DataFrame(columns=LIKE_DAY_COLUMNS)
    series, skipped, masks = estimate(grid, masks, like_day, config)
    in_run = ((grid["local_date"] >= validated.first) & (grid["local_date"] <= validated.last)).to_numpy()
    flagged = severity_mask(masks, config, "flag")
    days = summarise_days(grid[in_run], series[in_run], skipped, flagged[in_run], config)
    return VeeResult(
        series=series[in_run].reset_index(drop=True),
        days=days,
        masks=masks[in_run].reset_index(drop=True),
    )
