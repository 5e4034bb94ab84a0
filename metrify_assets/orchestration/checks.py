"""The asset checks that failed with severity ERROR in their latest evaluation, for `metrify run`'s
summary and `metrify status`: a run whose steps all succeeded still reports them, where before only
the UI showed a failed check (the new-user trial's `load_forecast_complete` and dbt source freshness).

Read from the runs asked about (the command's own runs; each downstream job's newest run), not from
every check of the code location: `metrify status` does not load the definitions (dbt's project), and
the cost is those runs' evaluation events. A check a later run evaluated again is reported as that
evaluation says (one read of the candidates' latest executions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

HEADLINE_VALUES = 2  # the figures a check's headline shows from its metadata


@dataclass(frozen=True)
class FailedCheck:
    """A check whose latest evaluation failed with severity ERROR: the asset, the check and its
    headline (the first non-zero counts of its metadata, else its status or description)."""

    asset: str
    check: str
    headline: str

    def __str__(self) -> str:
        return (
            f"{self.asset} {self.check}: {self.headline}" if self.headline else f"{self.asset} {self.check}"
        )


HEADLINE = "headline"  # a check's own words for what it found, in its metadata


def headline(evaluation: dg.AssetCheckEvaluation) -> str:
    """What the check found, in a few words: its `headline` entry when it has one (`selected_without_value
    191`), else its first non-zero integer figures (dbt tests' failed row count), else its `status`
    and `error` entries (dbt source freshness), else its description."""
    metadata: Mapping[str, dg.MetadataValue] = evaluation.metadata
    if HEADLINE in metadata:
        return str(metadata[HEADLINE].value)
    counts = [
        f"{label} {value.value:,}"
        for label, value in metadata.items()
        if isinstance(value, dg.IntMetadataValue) and value.value
    ]
    if counts:
        return ", ".join(counts[:HEADLINE_VALUES])
    words = [str(metadata[label].value) for label in ("status", "error") if label in metadata]
    return "; ".join(words) or (evaluation.description or "")


def _error_failure(evaluation: object) -> bool:
    return (
        isinstance(evaluation, dg.AssetCheckEvaluation)
        and not evaluation.passed
        and evaluation.severity == dg.AssetCheckSeverity.ERROR
    )


def failed_error_checks(instance: dg.DagsterInstance, run_ids: Iterable[str]) -> list[FailedCheck]:
    """The checks evaluated in `run_ids` whose latest evaluation (in those runs or any later one)
    failed with severity ERROR, by asset and check name."""
    candidates: set[dg.AssetCheckKey] = set()
    for run_id in dict.fromkeys(run_ids):
        records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
        for record in records.records:
            event = record.event_log_entry.dagster_event
            evaluation = event.event_specific_data if event else None
            if isinstance(evaluation, dg.AssetCheckEvaluation) and _error_failure(evaluation):
                candidates.add(evaluation.asset_check_key)
    if not candidates:
        return []
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(list(candidates))
    failed = []
    for key, execution in latest.items():
        if execution.status != AssetCheckExecutionRecordStatus.FAILED or execution.event is None:
            continue
        event = execution.event.dagster_event
        evaluation = event.event_specific_data if event else None
        if isinstance(evaluation, dg.AssetCheckEvaluation) and _error_failure(evaluation):
            failed.append(FailedCheck(key.asset_key.to_user_string(), key.name, headline(evaluation)))
    return sorted(failed, key=lambda f: (f.asset, f.check))
