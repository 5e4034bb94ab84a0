"""What a dbt build says about itself, read from its JSON log events: each node's result, dbt's words
on each failure, and one message for a build that failed.

The message names the models and tests that failed with dbt's own words on each (the database's
error, the failing rows' count), or dbt's errors when it built nothing (a bad selector, no
connection). It leaves out dbt's command line: dagster-dbt's error repeats the whole
`dbt build ... --vars {...}` with the path of dbt's debug log, which made a failed run's Dagster
failure, its alert and `metrify run`'s summary long and hard to read. Both failed builds say it this
way: a run's (warehouse/assets.py, which logs the command line at info level in the run's log) and
`metrify warehouse rebuild`'s (warehouse/rebuild.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FAILED = ("error", "fail")  # the statuses of a node that failed (a model's error, a test's failure)
# dbt's summary of each failure at the end of a build (the database's error, the failing rows' count).
FAILURE_EVENTS = ("RunResultError", "RunResultFailure", "RunResultWarningMessage")
# A database's status line for a statement that wrote rows, ending with their count.
ROW_COUNT = re.compile(r"^(?:INSERT \d+|SELECT|MERGE|UPDATE|COPY|SUCCESS) (\d+)$")


@dataclass(frozen=True)
class NodeResult:
    name: str
    resource_type: str  # model, test, seed, snapshot, unit_test
    status: str  # success, pass, error, fail, warn, skipped
    message: str
    seconds: float


def node_result(event: Mapping[str, Any]) -> NodeResult | None:
    """A finished node from one of dbt's JSON log events (`LogModelResult`, `LogTestResult`,
    `LogSeedResult`, `LogSnapshotResult`: the info-level line of each); None for any other event."""
    info = event.get("info", {})
    name = str(info.get("name", ""))
    data = event.get("data", {})
    node = data.get("node_info")
    if not (name.startswith("Log") and name.endswith("Result") and node):
        return None
    return NodeResult(
        name=str(node.get("node_name", "")),
        resource_type=str(node.get("resource_type", "")),
        status=str(node.get("node_status", "")),
        message=" ".join(str(info.get("msg") or "").split()),
        seconds=float(data.get("execution_time") or 0.0),
    )


def rows_written(event: Mapping[str, Any]) -> int | None:
    """The rows a model's build wrote, from its `LogModelResult` event: the count the database gave
    for the statement that filled it (PostgreSQL's `INSERT 0 24` for an incremental mart's days,
    `SELECT 24` for a table, Snowflake's `SUCCESS 24`). None for any other event, a failed model, or
    a statement the database counts no rows for (a view's `CREATE VIEW`)."""
    if event.get("info", {}).get("name") != "LogModelResult":
        return None
    found = ROW_COUNT.match(str(event.get("data", {}).get("status", "")))
    return int(found.group(1)) if found else None


def words(message: object) -> str:
    """dbt's message on one line, without the Jinja call stack it ends a compilation error with
    (`> in macro ...`, `> called by ...`: where in dbt's own macros, not what went wrong)."""
    lines = str(message or "").splitlines()
    kept = (line for line in lines if not line.strip().startswith(("> in macro", "> called by")))
    return " ".join(" ".join(kept).split())


@dataclass
class BuildReport:
    """What one dbt command said, event by event (`observe`)."""

    results: list[NodeResult] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # dbt's words on each failure (FAILURE_EVENTS)
    errors: list[str] = field(default_factory=list)  # its other error lines (when it built nothing)
    skipped: int = 0  # nodes not run because a node they depend on failed
    _said: dict[str, list[str]] = field(default_factory=dict)  # node name -> dbt's words on it

    def observe(self, event: Mapping[str, Any]) -> NodeResult | None:
        """Take in one of dbt's JSON log events; the node result it is, if it is one."""
        result = node_result(event)
        if result is not None:
            self.results.append(result)
            return result
        info, data = event.get("info", {}), event.get("data", {})
        text = words(info.get("msg"))
        if info.get("name") == "SkippingDetails":
            self.skipped += 1
        elif text and info.get("name") in FAILURE_EVENTS:
            self.details.append(text)
            node = str(data.get("node_info", {}).get("node_name", ""))
            if info.get("name") != "RunResultFailure":  # that one only names the node and its file
                self._said.setdefault(node, []).append(text)
        elif text and info.get("level") == "error":
            self.errors.append(text)
        return None

    @property
    def failed(self) -> tuple[NodeResult, ...]:
        return tuple(r for r in self.results if r.status in FAILED)

    def error(self, exit_code: int) -> str:
        """Why dbt failed without a node failing: its error lines, else its exit code."""
        return "; ".join(self.errors) or f"dbt exited with code {exit_code} and logged no error"

    def failure(self, command: str, exit_code: int) -> str:
        """One line for a failed `dbt COMMAND` (it exited `exit_code`): each model and test that
        failed with dbt's words on it, and how many nodes were skipped for them; or why it built
        nothing."""
        if not self.failed:
            return f"dbt {command} failed: {self.error(exit_code)}"
        nodes = "; ".join(
            " ".join([f"{r.resource_type} {r.name} ({r.status}):", *self._said.get(r.name, [])]).rstrip(":")
            for r in self.failed
        )
        n = self.skipped
        skipped = f"; {n} downstream {'model or test' if n == 1 else 'models and tests'} skipped" if n else ""
        return f"dbt {command} failed: {nodes}{skipped}"
