"""Where the dbt project lives: a module of its own, so code that only reads the project's files (the
API's response schemas) does not import dbt or dagster-dbt."""

from __future__ import annotations

from pathlib import Path

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
