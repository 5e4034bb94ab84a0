"""`vee_meter_readings`: the billing-grade interval series of each day partition.

Downstream of the validated readings (and the registry, for timezones and install dates); the dbt
consumption marts read it. Each run re-derives its days from what is stored, so a late reading
replaces its estimate, a reviewer's decision becomes an edit, and a re-run changes nothing.
"""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation at runtime.

from datetime import date

import dagster as dg
import pandas as pd
import psycopg
from pydantic import Field

from metrify_assets.errors import RETRY_POLICY, classified_step
from metrify_assets.metadata import markdown_table
from metrify_assets.meters.days import days_between
from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.estimation import SERIES_COLUMNS
from metrify_assets.meters.vee.gate import DAY_COLUMNS
from metrify_assets.meters.vee.process import VeeResult
from metrify_assets.meters.vee.store import VeeRun, run_days
from metrify_assets.partitions import DAYS, SINGLE_RUN, contiguous_ranges, partition_days
from metrify_assets.quality import gx
from metrify_assets.quality.checks import suite_check_result
from metrify_assets.resources import PostgresResource, RedisResource

DEFAULTS = VeeConfig()


class VeeRunConfig(dg.Config):
    """Run-time knobs of VEE; the rest of the catalogue's thresholds keep their defaults."""

    max_interpolation_minutes: int = Field(
        default=DEFAULTS.max_interpolation_minutes,
        description="Longest gap bridged by linear interpolation; longer gaps use like-day averaging.",
    )
    like_day_weeks: int = Field(
        default=DEFAULTS.like_day_weeks,
        description="Weeks of same-weekday history a like-day estimate averages.",
    )
    max_missing_share: float = Field(
        default=DEFAULTS.max_missing_share,
        description="A day with a larger share of intervals to estimate is not estimated, only flagged.",
    )
    gate_estimated_share: float = Field(
        default=DEFAULTS.gate_estimated_share, description="Billing gate: largest estimated share of a day."
    )
    gate_edited_share: float = Field(
        default=DEFAULTS.gate_edited_share, description="Billing gate: largest edited share of a day."
    )
    gate_missing_share: float = Field(
        default=DEFAULTS.gate_missing_share, description="Billing gate: largest missing share of a day."
    )
    gate_failed_share: float = Field(
        default=DEFAULTS.gate_failed_share, description="Billing gate: largest failed share of a day."
    )

    def vee_config(self) -> VeeConfig:
        return VeeConfig(**self.model_dump())


@dg.asset(
    deps=["validated_meter_readings", "meter_registry"],
    partitions_def=DAYS,
    backfill_policy=SINGLE_RUN,
    group_name="meters",
    kinds={"postgres", "pandas"},
    owners=["team:meter-data"],
    description="Billing-grade interval series (VEE): every interval of every meter-day with its status "
    "(actual / estimated / edited / missing / failed), method and rule version, in ops.vee_readings; "
    "the day's billing gate in ops.vee_days; every change in ops.vee_audit.",
    metadata={"table": "ops.vee_readings", "partitioned_by": "local day of the meter"},
    check_specs=[dg.AssetCheckSpec("gx_vee_meter_readings", asset="vee_meter_readings", blocking=True)],
    retry_policy=RETRY_POLICY,
)
@classified_step
def vee_meter_readings(
    context: dg.AssetExecutionContext, config: VeeRunConfig, postgres: PostgresResource, redis: RedisResource
) -> dg.MaterializeResult:
    first, last = partition_days(context)
    cfg = config.vee_config()
    with postgres.connect() as conn:
        archived = archived_days(conn, first, last)
        if archived:
            context.log.warning(
                f"{len(archived)} days of the run left PostgreSQL ({archived[0]} .. {archived[-1]}): skipped, "
                "their series and the marts' history stand; restore them (`metrify restore --dataset "
                "meter_readings --from ... --to ...`) to rebuild them"
            )
        hot_days = [d for d in days_between(first, last) if d not in set(archived)]
        cache = redis.get_cache()
        try:
            runs = [
                run_days(conn, a, b, cfg, run_id=context.run.run_id, cache=cache)
                for a, b in contiguous_ranges(hot_days)
            ]
        finally:
            if cache is not None:
                cache.close()
    run = merge_runs(runs)
    result = run.result
    suite = gx.validate("vee_meter_readings", result.series)
    check = suite_check_result(suite, blocking_description="Guards the billing-grade series.")
    if not suite.success:
        raise dg.Failure(f"vee_meter_readings suite failed. {check.metadata}", allow_retries=False)
    statuses = result.status_counts()
    days = result.days
    ready = int(days["billing_ready"].sum()) if len(days) else 0
    methods = result.series["method"].value_counts().rename_axis("method").reset_index(name="intervals")
    context.log.info(
        f"VEE {first}..{last}: {len(days)} meter-days, {statuses}, {ready} billing-ready, "
        f"{run.audit_rows} audit rows"
    )
    return dg.MaterializeResult(
        metadata={
            "days": dg.MetadataValue.text(f"{first} .. {last}"),
            "rule_version": dg.MetadataValue.text(cfg.rule_version),
            "meter_days": dg.MetadataValue.int(len(days)),
            "intervals": dg.MetadataValue.int(len(result.series)),
            **{f"intervals_{s}": dg.MetadataValue.int(n) for s, n in statuses.items()},
            "estimated_share": dg.MetadataValue.float(statuses["estimated"] / max(len(result.series), 1)),
            "billing_ready_days": dg.MetadataValue.int(ready),
            "billing_ready_share": dg.MetadataValue.float(ready / max(len(days), 1)),
            "audit_rows_written": dg.MetadataValue.int(run.audit_rows),
            "unplaced_quarantined": dg.MetadataValue.int(run.unplaced_quarantined),
            "reason_counts": dg.MetadataValue.json(result.reason_counts()),
            "methods": dg.MetadataValue.md(markdown_table(methods) if len(methods) else "no intervals"),
            "gate_failures": dg.MetadataValue.md(_gate_table(days)),
        },
        check_results=[check],
    )


def archived_days(conn: psycopg.Connection, first: date, last: date) -> list[date]:
    """Days whose readings left the hot tier (docs/lifecycle.md): VEE over them would replace their
    billing-grade series (and then the marts' history) with missing intervals, so runs skip them."""
    rows = conn.execute(
        "SELECT day FROM ops.lifecycle_days WHERE dataset = 'meter_readings' AND day BETWEEN %s AND %s "
        "AND hot_deleted_at IS NOT NULL AND (restored_at IS NULL OR restored_at < hot_deleted_at) ORDER BY day",
        (first, last),
    ).fetchall()
    return [d for (d,) in rows]


def merge_runs(runs: list[VeeRun]) -> VeeRun:
    """The runs of a partition range's hot stretches as one."""
    if not runs:
        empty = VeeResult(
            pd.DataFrame(columns=SERIES_COLUMNS), pd.DataFrame(columns=DAY_COLUMNS), pd.DataFrame()
        )
        return VeeRun(empty, 0, 0)
    if len(runs) == 1:
        return runs[0]
    result = VeeResult(
        pd.concat([r.result.series for r in runs], ignore_index=True),
        pd.concat([r.result.days for r in runs], ignore_index=True),
        pd.concat([r.result.masks for r in runs], ignore_index=True).fillna(False),
    )
    # A batch may span stretches, so its unplaced records would count in each: the largest count.
    return VeeRun(result, sum(r.audit_rows for r in runs), max(r.unplaced_quarantined for r in runs))


def _gate_table(days: pd.DataFrame) -> str:
    """Meter-days per failed gate test (a day may fail several)."""
    failures = days["gate_failures"][days["gate_failures"] != ""] if len(days) else pd.Series(dtype=str)
    if failures.empty:
        return "every meter-day passed the billing gate" if len(days) else "no meter-days"
    counts = failures.str.split(",").explode().value_counts().rename_axis("gate test")
    return markdown_table(counts.reset_index(name="meter-days"))
