"""Where the dbt project lives, and the asset group its models are in: a module of its own, so code
that only reads the project's files (the API's response schemas) or selects its assets (the schedules,
which `metrify status` reaches) does not import dbt or dagster-dbt."""

from __future__ import annotations

from pathlib import Path

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
WAREHOUSE_GROUP = "warehouse"  # the dbt models' Dagster asset group (`translator.MetrifyDbtTranslator`)
