"""dbt source freshness as Dagster asset checks: one per dbt source table, on its staging model.

`dbt source freshness` compares each source table's newest `loaded_at_field` (or `loaded_at_query`)
with now, against the warn/error thresholds of models/staging/ops/_ops__sources.yml. dagster-dbt 0.29
turns dbt tests into asset checks but not source freshness, so one multi-asset check runs the command
through the `dbt` resource and reports each source table it selected: passed when fresh or when the
table has no data yet (no rows, and no earlier evaluation of the check saw any: no data is not late
data), WARN severity past `warn_after`, ERROR past `error_after`, when a table the check saw rows in is
empty now, or when dbt could not tell.

The checks sit on the staging models (the view over each source, in the warehouse group), not on the
assets that write the `ops` tables: jobs select an asset with its checks, and the ingestion jobs would
then run dbt after every micro-batch. The hourly and nightly warehouse jobs (schedules.py) select the
warehouse group, so they run the checks.
"""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation at runtime.

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject

from metrify_assets.metadata import figure
from metrify_assets.resources import PostgresResource
from metrify_assets.warehouse.connection import dbt_env, environment
from metrify_assets.warehouse.console import dbt_console_to
from metrify_assets.warehouse.invocations import (
    invocation_dir,
    keep_parse_state,
    prune_invocations,
    select_args,
)

CHECK_NAME = "dbt_source_freshness"
NO_DATA_YET = "no data yet"
NEVER_LOADED = "never: the table has had no rows yet"
LAST_LOADED_AT = "last_loaded_at"  # an emptied table's newest load time, as its check last saw it


def staging_model(manifest: Mapping[str, Any], source_id: str) -> Mapping[str, Any]:
    """The one staging model that selects from a source."""
    (model,) = (
        manifest["nodes"][child]
        for child in manifest["child_map"][source_id]
        if child.startswith("model.") and manifest["nodes"][child]["fqn"][1] == "staging"
    )
    return dict(model)


def threshold(criteria: Mapping[str, Any], which: str) -> str:
    """`warn_after` / `error_after` as text ("3 hour"), or "none"."""
    after = criteria.get(which) or {}
    return f"{after['count']} {after['period']}" if after.get("count") else "none"


def describe(source: Mapping[str, Any]) -> str:
    loaded_at = source.get("loaded_at_field") or "loaded_at_query"
    criteria = source.get("freshness") or {}
    return (
        f"dbt source freshness of {source['source_name']}.{source['name']} (newest {loaded_at}): "
        f"warns after {threshold(criteria, 'warn_after')}, errors after {threshold(criteria, 'error_after')}."
    )


def freshness_result(
    key: dg.AssetCheckKey, result: Mapping[str, Any] | None, last_seen: Callable[[], datetime | None]
) -> dg.AssetCheckResult:
    """The check result of one source from its entry in dbt's sources.json (None: dbt reported none).
    `last_seen` gives the newest load time an earlier evaluation of the check saw, asked only for a
    table without rows (a read of the check's history per source is wasted on the usual fresh ones)."""
    if result is None:
        return dg.AssetCheckResult(
            asset_key=key.asset_key,
            check_name=key.name,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"status": "no result", "error": "dbt source freshness reported nothing for the source"},
        )
    status = str(result["status"])
    criteria = result.get("criteria") or {}
    metadata: dict[str, Any] = {
        "status": status,
        "warn_after": threshold(criteria, "warn_after"),
        "error_after": threshold(criteria, "error_after"),
    }
    loaded_at = datetime.fromisoformat(result["max_loaded_at"]) if result.get("max_loaded_at") else None
    # dbt's stand-in for the max of no rows is year 1 (17.7M hours old, an error to dbt). A table that
    # never had a row (a fresh install before the nightly forecast; the grid tables of a meter-only
    # deployment, whose writer runs and finds no samples) is not late; one the check saw rows in before
    # and that is empty now (the lifecycle deletes hot rows of a feed dead for 30 days) is, since then.
    empty = loaded_at is not None and loaded_at.year == 1
    seen = last_seen() if empty else None
    no_data_yet = empty and seen is None
    if no_data_yet:
        metadata["status"] = NO_DATA_YET
        metadata["max_loaded_at"] = NEVER_LOADED
    elif empty and seen is not None:
        metadata["status"] = "emptied"
        metadata[LAST_LOADED_AT] = dg.MetadataValue.timestamp(seen)
        metadata["age_hours"] = figure((datetime.now(UTC) - seen).total_seconds() / 3600)
    elif loaded_at is not None:
        metadata["max_loaded_at"] = dg.MetadataValue.timestamp(loaded_at)
        metadata["age_hours"] = figure(float(result["max_loaded_at_time_ago_in_s"]) / 3600)
    if result.get("message"):
        metadata["error"] = str(result["message"])
    return dg.AssetCheckResult(
        asset_key=key.asset_key,
        check_name=key.name,
        passed=status == "pass" or no_data_yet,
        severity=dg.AssetCheckSeverity.WARN if status == "warn" else dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
    )


SEEN_READ = 5  # evaluations read back for the last load time seen (one may have had none to tell)


def last_seen_load(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> datetime | None:
    """The newest load time the latest completed evaluations of check `key` saw (the newest of the
    last `SEEN_READ` that saw one): its `max_loaded_at`, or the `last_loaded_at` it carried on for a
    table already empty then; None when they saw no rows. dbt's stand-in for an empty table's
    maximum, year 1, which evaluations before this rule stored, is no load time: a grid table that
    never had a row stays "no data yet" after an upgrade, not "emptied" 17.7 million hours ago."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    done = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=SEEN_READ, status=done)
    for record in records:
        event = record.event
        evaluation = event.dagster_event.event_specific_data if event and event.dagster_event else None
        metadata = evaluation.metadata if isinstance(evaluation, dg.AssetCheckEvaluation) else {}
        for label in ("max_loaded_at", LAST_LOADED_AT):
            value = metadata.get(label)
            if isinstance(value, dg.TimestampMetadataValue) and value.value > 0:  # after 1970: a real load
                return datetime.fromtimestamp(value.value, UTC)
    return None


def build_source_freshness_checks(
    project: DbtProject, runs_dir: Path, translator: DagsterDbtTranslator
) -> dg.AssetChecksDefinition:
    """A check per source table of the project's manifest, on the asset of its staging model; each
    `dbt source freshness` in a directory of its own under `runs_dir` (`Settings.dbt_runs_dir`)."""
    manifest = json.loads(project.manifest_path.read_bytes())
    sources = {
        dg.AssetCheckKey(translator.get_asset_key(staging_model(manifest, source_id)), CHECK_NAME): props
        for source_id, props in manifest["sources"].items()
        if props.get("freshness")
    }
    specs = [
        dg.AssetCheckSpec(name=key.name, asset=key.asset_key, description=describe(props))
        for key, props in sources.items()
    ]

    @dg.multi_asset_check(name=CHECK_NAME, specs=specs, can_subset=True)
    def dbt_source_freshness(
        context: dg.AssetCheckExecutionContext, dbt: DbtCliResource, postgres: PostgresResource
    ) -> Iterator[dg.AssetCheckResult]:
        selected = {key: props for key, props in sources.items() if key in context.selected_asset_check_keys}
        select = [f"source:{props['source_name']}.{props['name']}" for props in selected.values()]
        target = runs_dir
        with environment(dbt_env(postgres.get_url())), dbt_console_to(context.log.debug):
            # dbt exits non-zero when a source is past error_after: that is a result, not a failure.
            invocation = dbt.cli(
                ["source", "freshness", *select_args(select)],
                raise_on_error=False,
                target_path=invocation_dir(target, CHECK_NAME, context.run.run_id, {}),
            ).wait()
        keep_parse_state(invocation.target_path, target, {})
        results = {r["unique_id"]: r for r in invocation.get_artifact("sources.json")["results"]}
        prune_invocations(invocation.target_path.parent)

        for key, props in selected.items():
            last_seen = partial(last_seen_load, context.instance, key)
            yield freshness_result(key, results.get(props["unique_id"]), last_seen)

    return dbt_source_freshness
