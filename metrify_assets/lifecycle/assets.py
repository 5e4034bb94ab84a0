"""The lifecycle as assets: hot (the validated tables in PostgreSQL) -> `warm_tier` -> `cold_tier` ->
`archive_tier`, partitioned by day, and `retention`, the weekly cleanup.

A tier asset's run covers a range of days and moves those that are due (by the policy's ages against
the run's clock, `as_of`); the others are left, and its metadata tables show each day's state.
"""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation at runtime.

from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd
import psycopg
from psycopg_pool import ConnectionPool
from pydantic import Field

from metrify_assets.alerts import store as alerts
from metrify_assets.errors import RETRY_POLICY, classified_step
from metrify_assets.lifecycle import retention, state
from metrify_assets.lifecycle.policy import TIERED_DATASETS, Policy, RawRetention, TierAges
from metrify_assets.lifecycle.tables import TABLES
from metrify_assets.lifecycle.tiers import Outcome, copy_to_warm, move_due
from metrify_assets.metadata import markdown_table
from metrify_assets.partitions import DAYS, SINGLE_RUN, partition_days
from metrify_assets.resources import LakeResource, LandingResource, PostgresResource
from metrify_assets.resources.cache_resource import RedisResource
from metrify_assets.resources.lake import Lake
from metrify_assets.teams import DATA_ENGINEERING, owner

OWNERS = [owner(DATA_ENGINEERING)]
GROUP = "lifecycle"
MOVES_VERIFIED = (
    "Every day due for the {tier} tier moved and was verified: its copy matched its manifest before the "
    "move, and after it the objects have the new storage class, size, ETag and bytes. A failure names the "
    "days that failed and why (metadata `failures`, a critical `lifecycle:{tier}_tier` alert): they stay "
    "where they were, whole, until a rerun of their partitions moves them; the other days' moves stand."
)
# Days copied at once, each on a pooled connection: a day's work is mostly PostgreSQL's, Arrow's and
# the lake's, which run beside Python.
ARCHIVE_THREADS = 4
HOT_ASSETS = ["validated_meter_readings", "validated_grid_status", "validated_weather_observations"]


class TierAgesConfig(dg.Config):
    hot_days: int = Field(default=30, description="Days a day's rows stay in PostgreSQL.")
    warm_days: int = Field(
        default=90, description="Age at which a day moves from S3 STANDARD to STANDARD_IA."
    )
    cold_days: int = Field(default=365, description="Age at which a day moves to the archive class.")
    archive_class: str = Field(default="GLACIER", description="GLACIER or DEEP_ARCHIVE.")
    expire_days: int | None = Field(
        default=None, description="Age at which the archive copy is deleted (none: kept)."
    )


class LifecycleConfig(dg.Config):
    """Run-time knobs of the lifecycle: the clock, a dry run, and the policy (docs/lifecycle.md)."""

    as_of: str | None = Field(
        default=None, description="The lifecycle's today (YYYY-MM-DD); default: the UTC date of the run."
    )
    dry_run: bool = Field(default=False, description="Record and show what would move or go; change nothing.")
    ages: dict[str, TierAgesConfig] = Field(
        default_factory=dict,
        description=f"Tier ages per source ({', '.join(TIERED_DATASETS)}); defaults elsewhere.",
    )
    raw_ia_days: int | None = Field(
        default=30, description="Raw batches to STANDARD_IA after this many days."
    )
    raw_days: int | None = Field(
        default=400, description="Raw batches deleted after this many days (none: kept)."
    )
    quarantine_days: int | None = Field(default=730, description="Quarantine rows kept this many days.")
    reports_days: int | None = Field(default=90, description="Dated quality reports kept this many days.")
    ops_days: int | None = Field(
        default=400, description="Operational log tables (ledger, alerts...) kept this long."
    )
    landing_days: int | None = Field(
        default=7,
        description="Landing files deleted this many days after landing, once ingested and their raw batch "
        "is in the lake (none: kept).",
    )

    def policy(self) -> Policy:
        unknown = set(self.ages) - set(TIERED_DATASETS)
        if unknown:
            raise dg.Failure(  # the configuration is wrong on every attempt: no retry
                f"ages given for unknown sources {sorted(unknown)}: one of {', '.join(TIERED_DATASETS)}",
                allow_retries=False,
            )
        return Policy(
            ages={
                d: TierAges(**self.ages[d].model_dump()) if d in self.ages else TierAges()
                for d in TIERED_DATASETS
            },
            raw=RawRetention(ia_days=self.raw_ia_days, days=self.raw_days),
            quarantine_days=self.quarantine_days,
            reports_days=self.reports_days,
            ops_days=self.ops_days,
            landing_days=self.landing_days,
        )

    def today(self) -> date:
        return date.fromisoformat(self.as_of) if self.as_of else datetime.now(UTC).date()


def _outcome_table(outcomes: list[Outcome], limit: int = 60) -> str:
    if not outcomes:
        return "nothing due"
    frame = pd.DataFrame(
        [(o.dataset, o.day.isoformat(), o.action, o.rows, o.size, o.detail) for o in outcomes[:limit]],
        columns=["dataset", "day", "action", "rows", "bytes", "detail"],
    )
    more = (
        f"\n\n... and {len(outcomes) - limit} more (ops.lifecycle_log has them all)"
        if len(outcomes) > limit
        else ""
    )
    return markdown_table(frame) + more


def _result(
    outcomes: list[Outcome], conn_tiers: pd.DataFrame, extra: dict[str, dg.MetadataValue]
) -> dg.MaterializeResult:
    failures = [o for o in outcomes if o.failed]
    actions = pd.Series([o.action for o in outcomes], dtype=object).value_counts().to_dict()
    return dg.MaterializeResult(
        metadata={
            **extra,
            "days_processed": dg.MetadataValue.int(len(outcomes)),
            "actions": dg.MetadataValue.json({str(k): int(v) for k, v in actions.items()}),
            "failures": dg.MetadataValue.int(len(failures)),
            "rows": dg.MetadataValue.int(sum(o.rows for o in outcomes)),
            "bytes": dg.MetadataValue.int(sum(o.size for o in outcomes)),
            "days": dg.MetadataValue.md(_outcome_table(outcomes)),
            "days_by_tier": dg.MetadataValue.md(
                markdown_table(conn_tiers) if len(conn_tiers) else "no day in the lake yet"
            ),
        }
    )


def _fail_on(outcomes: list[Outcome], what: str) -> None:
    failures = [o for o in outcomes if o.failed]
    if failures:
        # Not retried: a retry would redo every day's work seconds later, and the usual causes (a
        # failed check, a locked or archived object) are still there; the next lifecycle run tries
        # the failed days again.
        raise dg.Failure(
            f"{len(failures)} days not {what} (nothing was deleted for them)",
            metadata={"failures": dg.MetadataValue.md(_outcome_table(failures))},
            allow_retries=False,
        )


@dg.asset(
    deps=HOT_ASSETS,
    partitions_def=DAYS,
    backfill_policy=SINGLE_RUN,
    group_name=GROUP,
    kinds={"s3", "parquet"},
    owners=OWNERS,
    description="Warm tier: each day of meter readings, grid status and weather as one Parquet (zstd) object "
    "in S3 STANDARD under `curated/<dataset>/dt=<day>/`, read back and verified, with a manifest beside it "
    "(rows, SHA-256, content checksum). Rewritten when the day's hot rows change; late rows for a day "
    "already deleted from PostgreSQL are merged in.",
    metadata={"lake_prefix": "curated/", "partitioned_by": "local day (meters), UTC day (grid, weather)"},
    retry_policy=RETRY_POLICY,
)
@classified_step
def warm_tier(
    context: dg.AssetExecutionContext, postgres: PostgresResource, lake: LakeResource
) -> dg.MaterializeResult:
    first, last = partition_days(context)
    store = lake.get_lake()
    now = datetime.now(UTC)
    days = [
        (dataset, date.fromordinal(ordinal))
        for dataset in TIERED_DATASETS
        for ordinal in range(first.toordinal(), last.toordinal() + 1)
    ]
    copied: dict[tuple[str, date], Outcome] = {}
    threads = max(1, min(ARCHIVE_THREADS, len(days)))
    with postgres.pool(threads) as pool, ThreadPoolExecutor(threads) as executor:
        futures = {
            executor.submit(_copy_day, pool, store, dataset, day, now, context.run.run_id): (dataset, day)
            for dataset, day in days
        }
        try:
            for future in as_completed(futures):
                outcome = copied[futures[future]] = future.result()
                if _had_rows(outcome):
                    context.log.info(f"{outcome.dataset} {outcome.day}: {outcome.action} {outcome.detail}")
        except BaseException:  # the run is being terminated: days not begun are left for the next run
            executor.shutdown(cancel_futures=True)
            raise
        with pool.connection() as conn:
            tiers = state.tier_table(conn)
    # In the order of the days, whichever thread copied them.
    outcomes = [o for o in (copied[d] for d in days) if _had_rows(o)]
    _fail_on(outcomes, "copied")
    return _result(outcomes, tiers, {"uri": dg.MetadataValue.path(store.uri("curated/"))})


def _had_rows(outcome: Outcome) -> bool:
    """Whether a day is worth reporting: one with no hot rows to copy is left out."""
    return outcome.action != "skipped" or outcome.detail != "no hot rows"


def _copy_day(
    pool: ConnectionPool, store: Lake, dataset: str, day: date, now: datetime, run_id: str
) -> Outcome:
    """One day's copy, committed on its own; a failure is the day's outcome, not the run's end."""
    try:
        with pool.connection() as conn:
            return copy_to_warm(conn, store, TABLES[dataset], day, now, run_id)
    except Exception as err:  # noqa: BLE001 - reported per day; the run fails after
        return Outcome(dataset, day, "failed", f"{type(err).__name__}: {err}")


def _transition_days(
    context: dg.AssetExecutionContext,
    config: LifecycleConfig,
    postgres: PostgresResource,
    lake: LakeResource,
    target: str,
) -> dg.MaterializeResult:
    first, last = partition_days(context)
    today = config.today()
    with postgres.connect() as conn:
        outcomes = move_due(
            conn,
            lake.get_lake(),
            config.policy(),
            today,
            first,
            last,
            target,
            datetime.now(UTC),
            context.run.run_id,
            config.dry_run,
        )
        tiers = state.tier_table(conn)
        failures = [o for o in outcomes if o.failed]
        report_failures(conn, f"{target}_tier", failures)
    for o in outcomes:
        context.log.info(f"{o.dataset} {o.day}: {o.action} {o.detail}")
    result = _result(
        outcomes,
        tiers,
        {"as_of": dg.MetadataValue.text(today.isoformat()), "dry_run": dg.MetadataValue.bool(config.dry_run)},
    )
    # A day that failed its check stays where it was, whole; the other days' moves and the retention
    # after this asset go on. The failed check and a critical alert say which day and why.
    check = dg.AssetCheckResult(
        check_name="moves_verified",
        passed=not failures,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "days_moved": dg.MetadataValue.int(sum(o.action.startswith("moved") for o in outcomes)),
            "days_failed": dg.MetadataValue.int(len(failures)),
            "failures": dg.MetadataValue.md(_outcome_table(failures) if failures else "none"),
        },
    )
    return dg.MaterializeResult(metadata=result.metadata, check_results=[check])


def report_failures(conn: psycopg.Connection, asset: str, failures: list[Outcome]) -> None:
    """Raise (or, once clear, resolve) the `lifecycle:<asset>` alert for copies that failed their checks."""
    key = f"lifecycle:{asset}"
    if failures:
        alerts.raise_alert(
            conn,
            alerts.Alert(
                kind="lifecycle",
                severity="critical",
                subject=asset,
                dedup_key=key,
                summary=f"{len(failures)} days not moved by {asset}: their copy failed a check (left where it was)",
                details={"days": [f"{o.dataset} {o.day}: {o.detail}" for o in failures[:20]]},
            ),
        )
    else:
        alerts.resolve_condition(conn, key, f"{asset} moved every due day")
    conn.commit()


@dg.asset(
    deps=["warm_tier"],
    partitions_def=DAYS,
    backfill_policy=SINGLE_RUN,
    group_name=GROUP,
    kinds={"s3"},
    owners=OWNERS,
    description="Cold tier: days past their warm age move from S3 STANDARD to STANDARD_IA, after their copy "
    "is checked against its manifest; the change is verified (class, size, ETag, bytes).",
    check_specs=[
        dg.AssetCheckSpec("moves_verified", asset="cold_tier", description=MOVES_VERIFIED.format(tier="cold"))
    ],
    metadata={"storage_class": "STANDARD_IA"},
    retry_policy=RETRY_POLICY,
)
@classified_step
def cold_tier(
    context: dg.AssetExecutionContext, config: LifecycleConfig, postgres: PostgresResource, lake: LakeResource
) -> dg.MaterializeResult:
    return _transition_days(context, config, postgres, lake, "cold")


@dg.asset(
    deps=["cold_tier"],
    partitions_def=DAYS,
    backfill_policy=SINGLE_RUN,
    group_name=GROUP,
    kinds={"s3"},
    owners=OWNERS,
    description="Archive tier: days past their cold age move from STANDARD_IA to GLACIER (or DEEP_ARCHIVE), "
    "after their copy is checked against its manifest. Reading them back needs a restore (`metrify restore`).",
    check_specs=[
        dg.AssetCheckSpec(
            "moves_verified", asset="archive_tier", description=MOVES_VERIFIED.format(tier="archive")
        )
    ],
    metadata={"storage_class": "GLACIER or DEEP_ARCHIVE"},
    retry_policy=RETRY_POLICY,
)
@classified_step
def archive_tier(
    context: dg.AssetExecutionContext, config: LifecycleConfig, postgres: PostgresResource, lake: LakeResource
) -> dg.MaterializeResult:
    return _transition_days(context, config, postgres, lake, "archive")


@dg.asset(
    deps=["archive_tier"],
    group_name=GROUP,
    kinds={"postgres", "s3"},
    owners=OWNERS,
    description="Weekly retention: hot rows past the hot window deleted once their day's copy is verified to "
    "hold them, archive copies past expire_days, raw batches, dated reports, quarantine rows and ops log "
    "tables by their own retention, and ingested landing files past landing_days once their raw batch is in "
    "the lake; nothing under a legal hold. `dry_run` lists what would go.",
    metadata={"log": "ops.lifecycle_log", "state": "ops.lifecycle_days"},
    retry_policy=RETRY_POLICY,
)
@classified_step
def retention_cleanup(
    context: dg.AssetExecutionContext,
    config: LifecycleConfig,
    postgres: PostgresResource,
    lake: LakeResource,
    landing: LandingResource,
    redis: RedisResource,
) -> dg.MaterializeResult:
    policy, today = config.policy(), config.today()
    with postgres.connect() as conn:
        report = retention.apply(
            conn,
            lake.get_lake(),
            policy,
            today,
            datetime.now(UTC),
            config.dry_run,
            context.run.run_id,
            landing.path,
        )
        tiers = state.tier_table(conn)
    if any(o.action == "deleted_hot" for o in report.outcomes):
        # Hot rows left PostgreSQL: the API's cached results of them retire at once (a meter's
        # latest entry, when its newest reading left, at its TTL).
        cache = redis.get_cache()
        if cache is not None:
            cache.bump(())
            cache.close()
    counts = report.counts()
    context.log.info(
        f"retention as of {today}{' (dry run)' if config.dry_run else ''}:\n{counts.to_string()}"
    )
    _fail_on(report.failures, "cleaned")
    result = _result(
        [o for o in report.outcomes if o.action != "nothing due"],
        tiers,
        {
            "as_of": dg.MetadataValue.text(today.isoformat()),
            "dry_run": dg.MetadataValue.bool(config.dry_run),
            "summary": dg.MetadataValue.md(markdown_table(counts) if len(counts) else "nothing due"),
        },
    )
    return result


defs = dg.Definitions(assets=[warm_tier, cold_tier, archive_tier, retention_cleanup])
