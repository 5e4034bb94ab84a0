"""The dbt models as Dagster assets; dbt tests surface as asset checks."""

# No `from __future__ import annotations`: Dagster inspects the `context` annotation at runtime.

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from metrify_assets.resources import PostgresResource
from metrify_assets.warehouse.connection import dbt_env_from_url, environment
from metrify_assets.warehouse.translator import MetrifyDbtTranslator


def build_warehouse_assets(project: DbtProject) -> dg.AssetsDefinition:
    """`@dbt_assets` over the project's manifest, running `dbt build` on the `postgres` resource."""

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        name="metrify_dbt",
        dagster_dbt_translator=MetrifyDbtTranslator(),
    )
    def metrify_dbt(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresResource
    ) -> Iterator[Any]:
        with environment(dbt_env_from_url(postgres.get_url())):
            yield from dbt.cli(["build"], context=context).stream()

    return metrify_dbt
