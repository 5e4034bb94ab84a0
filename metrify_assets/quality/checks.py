"""Turn GX suite results and rule outcomes into Dagster asset-check results and metadata."""

from __future__ import annotations

import dagster as dg

from metrify_assets.quality.gx import SuiteResult
from metrify_assets.quality.rules import RuleOutcome


def check_name(suite_name: str) -> str:
    """The asset-check name of a suite: `gx_<suite name>` (one convention for specs and results)."""
    return f"gx_{suite_name}"


def suite_check_result(
    result: SuiteResult, asset_key: str | None = None, blocking_description: str = ""
) -> dg.AssetCheckResult:
    """An ERROR-severity check result carrying counts, a per-expectation table and failing keys.

    `asset_key` is needed only when the check is yielded outside the asset it guards (multi-asset);
    `blocking_description` says what a failure stops (e.g. the upsert), shown in the Dagster UI.
    """
    failing_keys = sorted({k for e in result.failed for k in e.failing_keys})
    summary = (
        f"{result.successful}/{result.evaluated} expectations of `{result.suite_name}` passed "
        f"on {result.element_count} rows."
    )
    return dg.AssetCheckResult(
        check_name=check_name(result.suite_name),
        asset_key=dg.AssetKey.from_user_string(asset_key) if asset_key else None,
        passed=result.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{summary} {blocking_description}".strip(),
        metadata={
            "suite": dg.MetadataValue.text(result.suite_name),
            "element_count": dg.MetadataValue.int(result.element_count),
            "evaluated": dg.MetadataValue.int(result.evaluated),
            "successful": dg.MetadataValue.int(result.successful),
            "unexpected_counts": dg.MetadataValue.md(expectation_table(result)),
            "failing_expectations": dg.MetadataValue.json(
                [f"{e.expectation_type}({e.column or ''})" for e in result.failed]
            ),
            "failing_sample_keys": dg.MetadataValue.json(failing_keys),
        },
    )


def expectation_table(result: SuiteResult) -> str:
    """A markdown table, one row per expectation, with counts and a sample of unexpected values."""
    lines = [
        "| expectation | column | success | unexpected | unexpected % | sample |",
        "|---|---|---|---|---|---|",
    ]
    for e in result.expectations:
        count = "" if e.unexpected_count is None else str(e.unexpected_count)
        percent = "" if e.unexpected_percent is None else f"{e.unexpected_percent:.3f}"
        sample = ", ".join(e.unexpected_sample) or (e.observed_value or "")
        cells = [e.expectation_type, e.column or "", "yes" if e.success else "**no**", count, percent, sample]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def failure_summary(result: SuiteResult, samples: int = 3) -> str:
    """One line on what a suite found, for a run's failure message, an alert and `metrify run`'s
    summary (the check's metadata carries the table): the failed expectations with their counts and
    a few unexpected values."""
    parts = []
    for e in result.failed:
        found = [] if e.unexpected_count is None else [f"{e.unexpected_count:,} unexpected"]
        shown = list(e.unexpected_sample[:samples]) or ([e.observed_value] if e.observed_value else [])
        if shown:
            found.append("e.g. " + ", ".join(shown))
        detail = f" ({'; '.join(found)})" if found else ""
        parts.append(f"{e.expectation_type}({e.column or ''}){detail}")
    failed = len(result.failed)
    return (
        f"{failed} of {result.evaluated} expectations of {result.suite_name} failed on "
        f"{result.element_count:,} rows: " + "; ".join(parts)
    )


def rule_counts_metadata(outcome: RuleOutcome) -> dict[str, dg.MetadataValue]:
    """Dagster metadata for a rule outcome: records per decision and per reason code."""
    decisions = outcome.decision_counts()
    reasons = outcome.reason_counts()
    metadata: dict[str, dg.MetadataValue] = {
        f"records_{decision}": dg.MetadataValue.int(n) for decision, n in decisions.items()
    }
    metadata["records_total"] = dg.MetadataValue.int(sum(decisions.values()))
    metadata["reason_counts"] = dg.MetadataValue.json(reasons)
    metadata["reason_table"] = dg.MetadataValue.md(
        "\n".join(["| reason | records |", "|---|---|"] + [f"| {c} | {n} |" for c, n in reasons.items() if n])
    )
    return metadata
