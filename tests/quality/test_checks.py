"""Dagster check results from GX suite results, and rule-count metadata."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from metrify_assets.quality.checks import (
    check_name,
    failure_summary,
    rule_counts_metadata,
    suite_check_result,
)
from metrify_assets.quality.gx import validate
from metrify_assets.quality.rules import evaluate
from tests.quality.test_gx import meter_readings


def test_failing_suite_becomes_an_error_check_with_counts_and_keys() -> None:
    df = meter_readings(400)
    df.loc[10, ["meter_id", "reading_start"]] = df.loc[9, ["meter_id", "reading_start"]].to_numpy()
    df.loc[50, "interval_minutes"] = 7
    result = validate("validated_meter_readings", df)
    check = suite_check_result(
        result, asset_key="validated_meter_readings", blocking_description="Blocks upsert."
    )

    assert check.check_name == "gx_validated_meter_readings" == check_name(result.suite_name)
    assert check.asset_key == dg.AssetKey("validated_meter_readings")
    assert check.passed is False
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert check.description is not None and check.description.endswith("Blocks upsert.")
    meta = check.metadata
    assert meta["evaluated"].value == result.evaluated
    assert meta["successful"].value == result.evaluated - 2
    table = meta["unexpected_counts"].value
    assert isinstance(table, str)
    assert "| expect_compound_columns_to_be_unique | meter_id,reading_start | **no** | 2 |" in table
    assert "| expect_column_values_to_be_in_set | interval_minutes | **no** | 1 |" in table
    keys = meta["failing_sample_keys"].value
    assert isinstance(keys, list) and len(keys) == 2
    assert f"{df.loc[9, 'meter_id']}|{df.loc[9, 'reading_start'].isoformat()}" in keys


def test_a_failed_suite_reads_as_one_line_of_what_failed_with_counts_and_values() -> None:
    """The failure message of a guarded write (anomaly scores, enrichment): it had been the check's
    metadata dict, `{'suite': TextMetadataValue(text=...), ...}`, 30 lines in `metrify run`'s summary
    and in alerts."""
    df = meter_readings(400)
    df.loc[50, "interval_minutes"] = 7
    df.loc[51, "interval_minutes"] = 9
    result = validate("validated_meter_readings", df)
    summary = failure_summary(result)
    assert "\n" not in summary and "MetadataValue" not in summary
    assert summary.startswith(
        f"1 of {result.evaluated} expectations of validated_meter_readings failed on 400 rows"
    )
    assert "expect_column_values_to_be_in_set(interval_minutes) (2 unexpected; e.g. 7, 9)" in summary


def test_passing_suite_passes_without_an_asset_key() -> None:
    check = suite_check_result(validate("validated_meter_readings", meter_readings(50)))
    assert check.passed is True
    assert check.asset_key is None
    assert check.metadata["failing_sample_keys"].value == []


def test_rule_counts_metadata_counts_decisions_and_reasons() -> None:
    df = meter_readings(20, meters=2).drop(columns=["record_index"]).assign(record_index=range(20))
    df.loc[3, "energy_kwh"] = -5.0
    df.loc[4, "voltage_v"] = 270.0
    outcome = evaluate("meter_readings", df, pd.Timestamp("2026-03-02T00:00Z"))
    meta = rule_counts_metadata(outcome)
    assert meta["records_accept"].value == 18
    assert meta["records_flag"].value == 1
    assert meta["records_reject"].value == 1
    assert meta["records_total"].value == 20
    reasons = meta["reason_counts"].value
    assert isinstance(reasons, dict)
    assert reasons["negative_energy"] == 1 and reasons["voltage_out_of_range"] == 1
    assert reasons["spike"] == 0
    assert "| negative_energy | 1 |" in str(meta["reason_table"].value)
