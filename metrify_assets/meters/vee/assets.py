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
from metrify_assets.metadata import figure, markdown_table
from metrify_assets.meters.days import days_between
from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.estimation import SERIES_COLUMNS
from metrify_assets.meters.vee.process import METER_DAYS_PER_GROUP, VeeTotals
from metrify_assets.meters.vee.store import SUITE, empty_days, run_in_groups
from metrify_assets.partitions import DAYS, SINGLE_RUN, contiguous_ranges, partition_days
from metrify_assets.quality import gx
from metrify_assets.quality.checks import failure_summary, suite_check_result
from metrify_assets.resources import PostgresResource, RedisResource
from metrify_assets.storage import rebuilt
from metrify_assets.storage.days import hot_deleted_days
from metrify_assets.teams import METER_DATA, owner

DEFAULTS = VeeConfig()
REFUSED_NAMED = 10  # meters a failure names; the Dagster log has the count


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
        default=DEFAULTS.gate_edited_share,
        description="Billing gate: largest share of a day edited to another value (a reviewer's "
        "rejection, estimated; approvals keep the reading's value and do not count).",
    )
    gate_missing_share: float = Field(
        default=DEFAULTS.gate_missing_share, description="Billing gate: largest missing share of a day."
    )
    gate_failed_share: float = Field(
        default=DEFAULTS.gate_failed_share, description="Billing gate: largest failed share of a day."
    )

    meter_days_per_group: int = Field(
        default=METER_DAYS_PER_GROUP,
        gt=0,
        description="A run VEEs its days in groups of meters of about this many meter-days each, one "
        "transaction per group: a backfill's memory is bounded by a group's, not the range's.",
    )

    def vee_config(self) -> VeeConfig:
        return VeeConfig(**self.model_dump(exclude={"meter_days_per_group"}))


@dg.asset(
    deps=["validated_meter_readings", "meter_registry"],
    partitions_def=DAYS,
    backfill_policy=SINGLE_RUN,
    group_name="meters",
    kinds={"postgres", "pandas"},
    owners=[owner(METER_DATA)],
    description="Billing-grade interval series (VEE): every interval of every meter-day with its status "
    "(actual / estimated / edited / missing / failed), method and rule version, in ops.vee_readings; "
    "the day's billing gate in ops.vee_days; every change in ops.vee_audit.",
    metadata={"table": "ops.vee_readings", "partitioned_by": "local day of the meter"},
    check_specs=[
        dg.AssetCheckSpec(
            "gx_vee_meter_readings",
            asset="vee_meter_readings",
            blocking=True,
            description="GX suite vee_meter_readings on every interval VEE built, validated in memory "
            "before each group of meters is written: columns present, keys, status, method and direction "
            "not null, status and interval length from their sets, energy within ±1000 kWh, one row per "
            "meter and interval start. A meter whose series fails is not written (its series, days and "
            "billing_ready stay as stored before), found by halving its group; the run fails and stops "
            "the assets downstream (marts, billing). The other meters are written.",
        )
    ],
    retry_policy=RETRY_POLICY,
)
@classified_step
def vee_meter_readings(
    context: dg.AssetExecutionContext, config: VeeRunConfig, postgres: PostgresResource, redis: RedisResource
) -> dg.MaterializeResult:
    first, last = partition_days(context)
    cfg, run_id = config.vee_config(), context.run.run_id
    now = pd.Timestamp.now(tz="UTC")  # one as-of time for every group and stretch of the run
    totals, suites, refused = VeeTotals(), [], []
    with postgres.connect() as conn:
        began = rebuilt.begin(conn)
        archived = archived_days(conn, first, last)
        if archived:
            context.log.warning(
                f"{len(archived)} days of the run left PostgreSQL ({archived[0]} .. {archived[-1]}): skipped, "
                "their series and the marts' history stand; restore them (`metrify restore --dataset "
                "meter_readings --from ... --to ...`) to rebuild them"
            )
        empty = [d for d in empty_days(conn, first, last) if d not in set(archived)]
        if empty:
            context.log.warning(
                f"{len(empty)} days of the run have no meter reading, stored or quarantined, and no series "
                f"({empty[0]} .. {empty[-1]}): skipped, nothing written for them (no missing day for each "
                "registered meter, no 0 kWh in the marts)"
            )
        hot_days = [d for d in days_between(first, last) if d not in set(archived) | set(empty)]
        cache = redis.get_cache()
        try:
            for a, b in contiguous_ranges(hot_days):
                groups = run_in_groups(conn, a, b, cfg, config.meter_days_per_group, now, run_id, cache)
                for group, run in groups:
                    totals.add(run)
                    suites.append(run.suite)  # validated before the write: a failing meter is not written
                    if not run.written:
                        named = ", ".join(run.refused[:REFUSED_NAMED])
                        more = len(run.refused) - REFUSED_NAMED
                        named += f" and {more} more" if more > 0 else ""
                        refused.append(f"{a}..{b} {named}")
                        context.log.error(
                            f"VEE {a}..{b}: {len(run.refused)} of the {len(group.meter_ids)} meters of group "
                            f"{group.number}/{group.of} failed the vee_meter_readings suite and were not "
                            f"written ({named}); the others were: {failure_summary(run.suite)}"
                        )
                    if group.of > 1:
                        ids = group.meter_ids
                        context.log.info(
                            f"VEE {a}..{b}: group {group.number}/{group.of} ({ids[0]} .. {ids[-1]}, {len(ids)} "
                            f"of {group.meters_in_stretch} meters): {len(run.result.days)} meter-days, "
                            f"{run.audit_rows} audit rows"
                        )
                    del run  # before the next group's frames are built beside it (as run_in_groups does)
        finally:
            if cache is not None:
                cache.close()
    suite = gx.combined(suites) if suites else gx.validate(SUITE, empty_series())
    check = suite_check_result(suite, blocking_description="Guards the billing-grade series.")
    if not suite.success:
        raise dg.Failure(
            f"vee_meter_readings suite failed; these meters not written (series, days, audit): "
            f"{'; '.join(refused)}. "
            f"{failure_summary(suite)}",
            metadata=check.metadata,
            allow_retries=False,
        )
    with postgres.connect() as conn:
        rebuilt.stamp(conn, "vee_meter_readings", first, last, began)
    statuses = totals.status_counts()
    methods = pd.DataFrame(totals.methods.most_common(), columns=["method", "intervals"])
    context.log.info(
        f"VEE {first}..{last}: {totals.meter_days} meter-days, {statuses}, {totals.billing_ready} "
        f"billing-ready, {totals.audit_rows} audit rows"
    )
    return dg.MaterializeResult(
        metadata={
            "days": dg.MetadataValue.text(f"{first} .. {last}"),
            "days_skipped_empty": dg.MetadataValue.int(len(empty)),
            "rule_version": dg.MetadataValue.text(cfg.rule_version),
            "meter_days": dg.MetadataValue.int(totals.meter_days),
            "intervals": dg.MetadataValue.int(totals.intervals),
            **{f"intervals_{s}": dg.MetadataValue.int(n) for s, n in statuses.items()},
            "estimated_share": figure(statuses["estimated"] / max(totals.intervals, 1)),
            "billing_ready_days": dg.MetadataValue.int(totals.billing_ready),
            "billing_ready_share": figure(totals.billing_ready / max(totals.meter_days, 1)),
            "audit_rows_written": dg.MetadataValue.int(totals.audit_rows),
            "unplaced_quarantined": dg.MetadataValue.int(totals.unplaced_quarantined),
            "reason_counts": dg.MetadataValue.json(dict(totals.reasons.most_common())),
            "methods": dg.MetadataValue.md(markdown_table(methods) if len(methods) else "no intervals"),
            "gate_failures": dg.MetadataValue.md(_gate_table(totals)),
        },
        check_results=[check],
    )


def archived_days(conn: psycopg.Connection, first: date, last: date) -> list[date]:
    """Days whose readings left the hot tier (docs/lifecycle.md): VEE over them would replace their
    billing-grade series (and then the marts' history) with missing intervals, so runs skip them."""
    return hot_deleted_days(conn, "meter_readings", first, last)


def empty_series() -> pd.DataFrame:
    return pd.DataFrame(columns=SERIES_COLUMNS)


def _gate_table(totals: VeeTotals) -> str:
    """Meter-days per failed gate test (a day may fail several)."""
    if not totals.gate_failures:
        return "every meter-day passed the billing gate" if totals.meter_days else "no meter-days"
    counts = pd.DataFrame(totals.gate_failures.most_common(), columns=["gate test", "meter-days"])
    return markdown_table(counts)
