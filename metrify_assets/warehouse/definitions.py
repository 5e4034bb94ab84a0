"""The warehouse's Dagster definitions: the dbt assets, the `dbt` resource, the dbt source freshness
checks and, on the snowflake target, the `warehouse_load` asset with its `snowflake` resource.

`defs` is built on first access (module `__getattr__`), not at import: building it reads the
settings (dbt target) and may run `dbt parse`. The `postgres` resource comes from the root
definitions.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import dagster as dg

from metrify_assets.env import SnowflakeSettings, resolve_settings
from metrify_assets.resources.build import snowflake_resource
from metrify_assets.warehouse.assets import build_warehouse_assets
from metrify_assets.warehouse.project import dbt_cli_resource, dbt_project, ensure_manifest
from metrify_assets.warehouse.snowflake import WAREHOUSE_LOAD_KEY, warehouse_load
from metrify_assets.warehouse.source_freshness import build_source_freshness_checks
from metrify_assets.warehouse.translator import MetrifyDbtTranslator


def build_defs() -> dg.Definitions:
    """The dbt assets on a manifest that exists, with a `dbt` resource on the configured target; dbt's
    commands write their target directories and logs under the home (`Settings.dbt_runs_dir`). Built
    once per target, home and Snowflake account: a process whose settings change (a test's temporary
    home) gets definitions that write under its home now, not the home of its first call."""
    ensure_manifest()
    settings = resolve_settings()
    return _defs_for(settings.dbt_target, settings.dbt_runs_dir, settings.snowflake)


@cache
def _defs_for(dbt_target: str, runs_dir: Path, snowflake: SnowflakeSettings) -> dg.Definitions:
    if dbt_target != "snowflake":
        translator = MetrifyDbtTranslator()
        return dg.Definitions(
            assets=[build_warehouse_assets(dbt_project(), runs_dir, translator)],
            asset_checks=[build_source_freshness_checks(dbt_project(), runs_dir, translator)],
            resources={"dbt": dbt_cli_resource()},
        )
    # On Snowflake the dbt sources are fed by `warehouse_load`, which needs a `snowflake` resource.
    translator = MetrifyDbtTranslator(source_key=WAREHOUSE_LOAD_KEY)
    return dg.Definitions(
        assets=[warehouse_load, build_warehouse_assets(dbt_project(), runs_dir, translator)],
        asset_checks=[build_source_freshness_checks(dbt_project(), runs_dir, translator)],
        resources={"dbt": dbt_cli_resource(), "snowflake": snowflake_resource(snowflake)},
    )


def __getattr__(name: str) -> dg.Definitions:
    if name == "defs":
        return build_defs()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
