"""Rebuilding marts in full (`metrify warehouse rebuild`): dbt's `build --full-refresh` on a selection.

Dagster's runs are partitioned and never rebuild an incremental model in full, yet some changes need
it: a column removed or retyped (dbt's `on_schema_change` takes only additions in), an upgrade whose
release notes say so, a model whose old rows were computed wrongly. A full refresh recomputes a model
from what its inputs hold now, so before it runs, `plan` says which selected models would lose rows:
those whose inputs lead, through models rebuilt with them, to an `ops` table the data lifecycle
deletes old days from (`lifecycle/retention.TRIMMED_TABLES`). A model that reads only marts keeping
their history (an incremental model not selected, or a snapshot) loses nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metrify_assets.warehouse.console import dbt_events_to
from metrify_assets.warehouse.invocations import command_dir, prune_invocations, select_args
from metrify_assets.warehouse.results import FAILED, BuildReport, NodeResult

log = logging.getLogger(__name__)
# The kinds of node `build` makes (the others it selects are tests), named as dbt's events name them.
BUILT = ("model", "seed", "snapshot")


@dataclass(frozen=True)
class Plan:
    """What a rebuild of a selection would do."""

    select: tuple[str, ...]
    models: tuple[str, ...]  # the selected models, by name, in dbt's order
    incremental: tuple[str, ...]  # of them, the incremental ones (their tables are dropped and rebuilt)
    # model -> the trimmed `ops` tables it would be rebuilt from
    loses_history: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    plan: Plan
    results: tuple[NodeResult, ...]
    seconds: float
    error: str | None  # dbt's own error (a bad selector, no connection) when it did not build at all
    details: tuple[str, ...] = ()  # dbt's words on each failure (the database's error, failing rows)

    @property
    def failed(self) -> tuple[NodeResult, ...]:
        return tuple(r for r in self.results if r.status in FAILED)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failed


def _ops_table(manifest: Mapping[str, Any], unique_id: str) -> str | None:
    source = manifest["sources"].get(unique_id)
    if source is None or source["source_name"] != "ops":
        return None
    return f"ops.{source['identifier'] or source['name']}"


def trimmed_inputs(
    manifest: Mapping[str, Any], unique_id: str, selected: set[str], trimmed: frozenset[str]
) -> set[str]:
    """The trimmed `ops` tables that `unique_id`'s rebuild would read, directly or through parents
    whose rows are recomputed too: views and tables (rebuilt on every run) and anything selected.
    An incremental model or a snapshot left out of the selection keeps its history, and stops the walk."""
    found: set[str] = set()
    seen: set[str] = set()
    stack = list(manifest["parent_map"].get(unique_id, []))
    while stack:
        parent = stack.pop()
        if parent in seen:
            continue
        seen.add(parent)
        table = _ops_table(manifest, parent)
        if table is not None:
            if table in trimmed:
                found.add(table)
            continue
        node = manifest["nodes"].get(parent)
        if node is None or node["resource_type"] not in ("model", "snapshot"):
            continue  # a seed holds its own rows
        keeps_history = node["resource_type"] == "snapshot" or node["config"]["materialized"] == "incremental"
        if keeps_history and parent not in selected:
            continue
        stack.extend(manifest["parent_map"].get(parent, []))
    return found


def make_plan(
    manifest: Mapping[str, Any], select: Sequence[str], selected_ids: Iterable[str], trimmed: frozenset[str]
) -> Plan:
    """The plan for `selected_ids` (what dbt selected for `select`)."""
    chosen = set(selected_ids)
    models = [
        uid
        for uid in dict.fromkeys(selected_ids)
        if manifest["nodes"].get(uid, {}).get("resource_type") == "model"
    ]
    incremental = [uid for uid in models if manifest["nodes"][uid]["config"]["materialized"] == "incremental"]
    loses = {}
    for uid in incremental:
        tables = trimmed_inputs(manifest, uid, chosen, trimmed)
        if tables:
            loses[manifest["nodes"][uid]["name"]] = tuple(sorted(tables))
    names = tuple(manifest["nodes"][uid]["name"] for uid in models)
    return Plan(tuple(select), names, tuple(manifest["nodes"][u]["name"] for u in incremental), loses)


def selected_ids(dbt: Any, select: Sequence[str], runs_dir: Path) -> list[str]:
    """What dbt selects for `select` (`dbt ls`), as unique ids: dbt's own selector grammar. The
    command's directory is under `runs_dir` (`Settings.dbt_runs_dir`)."""
    invocation = dbt.cli(
        ["ls", "--no-use-colors", "--output", "json", "--output-keys", "unique_id", *select_args(select)],
        raise_on_error=False,
        target_path=command_dir(runs_dir),
    )
    ids, report = [], BuildReport()
    for event in dbt_events_to(invocation.stream_raw_events(), log.debug):
        report.observe(event.raw_event)
        message = event.raw_event.get("info", {}).get("msg", "")
        if message.startswith("{"):
            ids.append(json.loads(message)["unique_id"])
    invocation.wait()
    if not invocation.is_successful():
        raise ValueError(
            f"dbt could not select {' '.join(select)!r}: {report.error(invocation.process.returncode)}"
        )
    return ids


def rebuild(
    dbt: Any,
    plan: Plan,
    dbt_vars: Mapping[str, object],
    runs_dir: Path,
    on_result: Callable[[NodeResult], None] = lambda _: None,
) -> Outcome:
    """`dbt build --full-refresh --select ...`: the plan's models and their tests (seeds and snapshots
    the selection names too), reporting each node as it finishes; the command's directory is under
    `runs_dir` (`Settings.dbt_runs_dir`)."""
    args = ["build", "--full-refresh", "--no-use-colors", "--vars", json.dumps(dict(dbt_vars))]
    started = time.monotonic()
    invocation = dbt.cli(
        [*args, *select_args(plan.select)], raise_on_error=False, target_path=command_dir(runs_dir)
    )
    report = BuildReport()
    for event in dbt_events_to(invocation.stream_raw_events(), log.debug):
        result = report.observe(event.raw_event)
        if result is not None:
            on_result(result)
    invocation.wait()
    error = None
    if not invocation.is_successful() and not report.failed:
        error = report.error(invocation.process.returncode)
    prune_invocations(invocation.target_path.parent)
    return Outcome(plan, tuple(report.results), time.monotonic() - started, error, tuple(report.details))
