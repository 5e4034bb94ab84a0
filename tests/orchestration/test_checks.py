"""Failed ERROR-severity asset checks reach `metrify run`'s summary and `metrify status`: real runs on an
ephemeral instance, a check failing as the trial's `load_forecast_complete` did, one failing with
severity WARN and one passing; then the failing one evaluated again and passing."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import dagster as dg
import pytest
import typer
from rich.console import Console

from metrify_assets.cli.run import CHECKS_FAILED, print_run_summary
from metrify_assets.orchestration.catchup import RunSummary
from metrify_assets.orchestration.checks import HEADLINE, FailedCheck, failed_error_checks, headline
from metrify_assets.orchestration.status import Status, attention


def forecast_asset(without_value: int) -> dg.AssetsDefinition:
    @dg.asset(
        name="trial_forecast",
        check_specs=[
            dg.AssetCheckSpec("trial_forecast_complete", asset="trial_forecast"),
            dg.AssetCheckSpec("trial_forecast_tidy", asset="trial_forecast"),
            dg.AssetCheckSpec("trial_forecast_rows", asset="trial_forecast"),
        ],
    )
    def trial_forecast() -> dg.MaterializeResult:
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name="trial_forecast_complete",
                    passed=without_value == 0,
                    metadata={
                        "series_days": 2,
                        "selected_without_value": without_value,
                        HEADLINE: f"selected_without_value {without_value}",
                    },
                ),
                dg.AssetCheckResult(
                    check_name="trial_forecast_tidy",
                    passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"untidy": 3},  # WARN: not listed
                ),
                dg.AssetCheckResult(check_name="trial_forecast_rows", passed=True),
            ]
        )

    return trial_forecast


def test_the_latest_failed_error_checks_of_the_runs_asked_about() -> None:
    instance = dg.DagsterInstance.ephemeral()
    failing = dg.materialize([forecast_asset(191)], instance=instance)
    assert failing.success  # a failed check does not fail the run: nothing else told
    found = failed_error_checks(instance, [failing.run_id])
    assert found == [FailedCheck("trial_forecast", "trial_forecast_complete", "selected_without_value 191")]
    assert str(found[0]) == "trial_forecast trial_forecast_complete: selected_without_value 191"
    # Without a headline entry: the non-zero counts (a dbt test's failed row count), else the status.
    counts = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("a"),
        check_name="c",
        passed=False,
        metadata={"dagster_dbt/failed_row_count": dg.MetadataValue.int(4), "zero": dg.MetadataValue.int(0)},
    )
    assert headline(counts) == "dagster_dbt/failed_row_count 4"
    stale = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("a"),
        check_name="c",
        passed=False,
        metadata={"status": dg.MetadataValue.text("error")},
    )
    assert headline(stale) == "error"
    # A later run passing the check: its latest evaluation is what counts, whichever run is asked about.
    passing = dg.materialize([forecast_asset(0)], instance=instance)
    assert failed_error_checks(instance, [failing.run_id]) == []
    assert failed_error_checks(instance, [passing.run_id]) == []


def test_run_summary_and_status_name_the_failed_check_and_run_exits_3() -> None:
    check = "trial_forecast trial_forecast_complete: selected_without_value 191"
    out = io.StringIO()
    with pytest.raises(typer.Exit) as exited:
        print_run_summary(Console(file=out, width=400), RunSummary(batch_ids=["b1"], failed_checks=[check]))
    assert exited.value.exit_code == CHECKS_FAILED == 3
    text = out.getvalue()
    assert check in text and "1 check of severity ERROR failed" in text
    # A failed run outranks it: exit code 1, the next `metrify run` has work to do.
    with pytest.raises(typer.Exit) as exited:
        print_run_summary(
            Console(file=io.StringIO(), width=200),
            RunSummary(batch_ids=["b1"], failed=["daily_job: boom"], failed_checks=[check]),
        )
    assert exited.value.exit_code == 1

    status = Status(at=datetime.now(UTC), failed_checks=[FailedCheck("a/b", "c", "status error")])
    assert any(
        line.startswith("check a/b c: status error failed (severity ERROR") for line in attention(status)
    )
