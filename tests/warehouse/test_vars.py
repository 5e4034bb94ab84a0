"""Thresholds shared by Python and dbt have one source: dbt_project.yml's defaults equal Python's."""

from __future__ import annotations

import yaml

from metrify_assets.warehouse.paths import DBT_PROJECT_DIR
from metrify_assets.warehouse.vars import dbt_vars


def test_dbt_project_defaults_equal_the_python_values() -> None:
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    defaults = project["vars"]
    for name, value in dbt_vars().items():
        assert defaults[name] == value, f"dbt_project.yml var {name}={defaults[name]} but Python says {value}"
