"""How dbt resources appear in Dagster: one `warehouse` group, owned by the data platform team.

Source asset keys come from each source table's `config.meta.dagster.asset_key` (the default translator
honours it), which ties the dbt sources to the Dagster assets that write the `ops` tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject

from metrify_assets.warehouse.freshness import mart_freshness

WAREHOUSE_GROUP = "warehouse"
WAREHOUSE_OWNERS = ("team:data-platform",)

# Several `ops` tables are written by one asset (meter_readings, quarantine and ingest_ledger all
# come from validated_meter_readings), so duplicate source keys are expected.
TRANSLATOR_SETTINGS = DagsterDbtTranslatorSettings(
    enable_asset_checks=True,
    enable_duplicate_source_asset_keys=True,
)


class MetrifyDbtTranslator(DagsterDbtTranslator):
    """Group, owners, kinds and (for marts) freshness policies of Metrify's dbt models.

    `source_key` replaces every source's key: on Snowflake the sources are the raw copies that one
    asset (`warehouse_load`) writes, not the `ops` tables.
    """

    def __init__(self, source_key: dg.AssetKey | None = None) -> None:
        super().__init__(settings=TRANSLATOR_SETTINGS)
        self.source_key = source_key

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if self.source_key is not None and dbt_resource_props["resource_type"] == "source":
            return self.source_key
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return WAREHOUSE_GROUP

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str] | None:
        return list(WAREHOUSE_OWNERS)

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if not unique_id.startswith("model."):
            return spec
        props = self.get_resource_props(manifest, unique_id)
        layer = props["fqn"][1]
        spec = spec.merge_attributes(kinds={"sql"}, tags={"metrify/layer": layer})
        if layer == "marts":
            spec = spec.replace_attributes(freshness_policy=mart_freshness(props["name"]))
        return spec
