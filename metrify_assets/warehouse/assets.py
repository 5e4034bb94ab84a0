"""The dbt models as Dagster assets; dbt tests surface as asset checks.

The assets are partitioned by local day. A partitioned run (one day, or a backfill of a range in a
single run) names the range's first and last day to dbt in the environment (`partition_env`; the
macros read it while dbt executes, `partition_days` in macros/incremental.sql), and the incremental
facts rebuild exactly those days; outside Dagster, `dbt build` without days lets the facts pick up
whatever changed since their watermark. The days are not dbt vars: dbt parses the whole project again
whenever vars change, so every build of new days parsed in full; in the environment, a build starts
from the parse state of the last build whichever its days (warehouse/invocations.py).
Dagster runs always carry a partition (key or range): its dbt test checks need one.
Before the build, the `ops` tables that changed a lot since autovacuum last analyzed them are
analyzed (storage/statistics.py), so dbt's queries are planned on current figures. After it, the
Redis cache's global generation moves on, so the data API never serves a mart result from before it.
dbt's console lines go to the run's debug log, not stdout (warehouse/console.py).
"""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation at runtime.

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtCliRuntimeError, DbtCliResource, DbtProject, dbt_assets

from metrify_assets.partitions import DAYS, SINGLE_RUN, partition_days
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.cache_resource import RedisResource
from metrify_assets.storage import rebuilt
from metrify_assets.storage.statistics import analyze_stale
from metrify_assets.warehouse.connection import dbt_env, environment, partition_env
from metrify_assets.warehouse.console import dbt_events_to
from metrify_assets.warehouse.invocations import (
    invocation_dir,
    keep_parse_state,
    prune_invocations,
)
from metrify_assets.warehouse.results import BuildReport, rows_written
from metrify_assets.warehouse.translator import MetrifyDbtTranslator
from metrify_assets.warehouse.vars import dbt_vars as project_vars

# What macros/hot_tier.sql logs for a mart that kept, as stored, the days whose samples left PostgreSQL.
KEPT_AS_STORED = ": kept as stored "


def kept_as_stored(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(the model's unique_id, its words) of the `JinjaLogInfo` event in which macros/hot_tier.sql names
    the days a mart kept as stored because the data lifecycle deleted their samples from PostgreSQL;
    None for any other event."""
    if event.get("info", {}).get("name") != "JinjaLogInfo":
        return None
    data = event.get("data", {})
    message = str(data.get("msg", ""))
    if KEPT_AS_STORED not in message:
        return None
    return str(data.get("node_info", {}).get("unique_id", "")), message


def build_warehouse_assets(
    project: DbtProject, runs_dir: Path, translator: MetrifyDbtTranslator | None = None
) -> dg.AssetsDefinition:
    """`@dbt_assets` over the project's manifest, running `dbt build` on the configured target, each
    build in a directory of its own under `runs_dir` (the home's: `Settings.dbt_runs_dir`)."""

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        name="metrify_dbt",
        dagster_dbt_translator=translator or MetrifyDbtTranslator(),
        partitions_def=DAYS,
        backfill_policy=SINGLE_RUN,
    )
    def metrify_dbt(
        context: dg.AssetExecutionContext,
        dbt: DbtCliResource,
        postgres: PostgresResource,
        redis: RedisResource,
    ) -> Iterator[Any]:
        dbt_vars: dict[str, object] = {**project_vars()}
        partitioned = context.has_partition_key or context.has_partition_key_range
        days = partition_days(context) if partitioned else None  # Dagster's runs always have days
        # No colour codes: dbt's errors end up in run failures, alerts and `metrify run`'s summary as text.
        args = ["build", "--no-use-colors", "--vars", json.dumps(dbt_vars)]
        with postgres.connect(autocommit=True) as conn:
            began = rebuilt.begin(conn)  # before dbt reads: the touches it will see (storage/rebuilt.py)
            analyzed = analyze_stale(conn)
        if analyzed:
            changed = ", ".join(f"{t.name} ({t.changed_rows:,} rows changed)" for t in analyzed)
            context.log.info(f"Planner statistics refreshed before the build: {changed}")
        with environment(dbt_env(postgres.get_url(), days)):
            # Not dagster-dbt's error when the build fails: it holds dbt's whole command line (results.py).
            target = runs_dir
            invocation = dbt.cli(
                args,
                context=context,
                raise_on_error=False,
                target_path=invocation_dir(target, "metrify_dbt", context.run.run_id, dbt_vars),
            )
            report = BuildReport()
            kept: dict[str, list[str]] = {}  # model -> the days it kept as stored (kept_as_stored)
            try:
                for event in dbt_events_to(invocation.stream_raw_events(), context.log.debug):
                    report.observe(event.raw_event)
                    said = kept_as_stored(event.raw_event)
                    if said is not None:
                        context.log.info(said[1])
                        kept.setdefault(said[0], []).append(said[1])
                    rows = rows_written(event.raw_event)
                    node = event.raw_event.get("data", {}).get("node_info", {}).get("unique_id")
                    for asset_event in event.to_default_asset_events(
                        manifest=invocation.manifest,
                        dagster_dbt_translator=invocation.dagster_dbt_translator,
                        context=context,
                        target_path=invocation.target_path,
                        project=invocation.project,
                    ):
                        if isinstance(asset_event, dg.Output):
                            added: dict[str, dg.MetadataValue] = {}
                            if rows is not None:  # what the UI plots per materialization
                                added["rows_written"] = dg.MetadataValue.int(rows)
                            if node in kept:  # days a run over them did not rebuild from what is left
                                added["kept_as_stored"] = dg.MetadataValue.text("; ".join(kept[node]))
                            if added:
                                asset_event = asset_event.with_metadata({**asset_event.metadata, **added})
                        yield asset_event
                keep_parse_state(invocation.target_path, target, dbt_vars)
                if not invocation.is_successful():
                    context.log.info(
                        f"dbt command: {invocation.dbt_command}; days: {partition_env(days)}; "
                        f"its debug log: "
                        f"{invocation.target_path / 'dbt.log'}"
                    )
                    raise DagsterDbtCliRuntimeError(report.failure("build", invocation.process.returncode))
                prune_invocations(invocation.target_path.parent)
                if days is not None:  # the build succeeded
                    with postgres.connect() as conn:
                        rebuilt.stamp(conn, "metrify_dbt", *days, began)
            finally:  # the marts changed (a failed build may have committed some): cached results retire
                cache = redis.get_cache()
                if cache is not None:
                    cache.bump(())
                    cache.close()

    return metrify_dbt
