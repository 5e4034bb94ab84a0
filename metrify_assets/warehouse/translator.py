"""How dbt resources appear in Dagster: one `warehouse` group, owned by the data platform team.

Source asset keys come from each source table's `config.meta.dagster.asset_key` (the default translator
honours it), which ties the dbt sources to the Dagster assets that write the `ops` tables.

Every dbt test's asset check carries a description: the test's own (`description:` in YAML) or one made
from its kind, model and columns, so that no check page in the UI says "No description provided".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject

from metrify_assets.teams import DATA_PLATFORM, owner
from metrify_assets.warehouse.freshness import mart_freshness
from metrify_assets.warehouse.paths import WAREHOUSE_GROUP

WAREHOUSE_OWNERS = (owner(DATA_PLATFORM),)

_REF = re.compile(r"""ref\(\s*['"]([^'"]+)['"]""")

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

    def get_asset_check_spec(
        self,
        asset_spec: dg.AssetSpec,
        manifest: Mapping[str, Any],
        unique_id: str,
        project: DbtProject | None,
    ) -> dg.AssetCheckSpec | None:
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        return dg.AssetCheckSpec(
            spec.name,
            asset=spec.asset_key,
            description=describe_test(self.get_resource_props(manifest, unique_id), spec.asset_key.path[-1]),
            additional_deps=spec.additional_deps,
            blocking=spec.blocking,
            metadata=spec.metadata,
            automation_condition=spec.automation_condition,
            partitions_def=spec.partitions_def,
        )


def describe_test(test: Mapping[str, Any], model: str) -> str:
    """What dbt test `test` of `model` checks and what its failure means: its YAML `description` if it
    has one, else made from its kind and columns (e.g. "not_null on fct_x.meter_id: ...")."""
    if test.get("description"):
        return str(test["description"])
    meta = test.get("test_metadata") or {}
    kwargs = meta.get("kwargs", {})
    column = kwargs.get("column_name") or test.get("column_name")
    on = f"{meta.get('name', test['name'])} on {model}" + (f".{column}" if column else "")
    if meta.get("name") == "not_null":
        what = f"every row has a {column}. A failure counts the rows where it is null."
    elif meta.get("name") == "unique":
        what = f"no {column} occurs twice. A failure counts the repeated values."
    elif meta.get("name") == "accepted_values":
        values = ", ".join(str(v) for v in kwargs.get("values", []))
        what = f"{column} is one of {values}. A failure counts the rows with any other value."
    elif meta.get("name") == "relationships":
        what = (
            f"every {column} is a {kwargs.get('field')} of {_ref_name(kwargs.get('to', ''))}. "
            f"A failure counts the rows whose {column} is not there."
        )
    elif meta.get("name") == "unique_combination_of_columns":
        columns = ", ".join(kwargs.get("combination_of_columns", []))
        what = f"one row per ({columns}). A failure counts the repeated combinations."
    elif meta.get("name") == "expression_is_true":
        what = f"every row satisfies `{kwargs.get('expression')}`. A failure counts the rows that do not."
    elif meta.get("name") == "equals_sum_of":
        what = (
            f"equals the sum of {_ref_name(kwargs.get('compare_model', ''))}.{kwargs.get('compare_column')} "
            f"per {', '.join(kwargs.get('group_by', []))}. A failure counts the groups that differ."
        )
    else:
        what = f"a failure counts the rows that {test['original_file_path']} returns."
    severity = str(test.get("config", {}).get("severity") or "error").lower()
    effect = (
        "Severity error: a failure blocks the assets downstream of the model."
        if severity == "error"
        else "Severity warn: a failure is reported and blocks nothing."
    )
    return f"{on}: {what} {effect}"


def _ref_name(ref: str) -> str:
    """`dim_meter` of "ref('dim_meter')" (a test's `to` or `compare_model` argument)."""
    found = _REF.search(ref)
    return found.group(1) if found else ref
