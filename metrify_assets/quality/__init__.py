"""Data quality: record-level rules, GX suites, Dagster check results and quality scores."""
