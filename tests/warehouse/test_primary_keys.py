"""Every model's key is tested in a form dbt's tooling recognises (docs/warehouse.md#primary-keys):
`unique` + `not_null` on one column, or the composite-key test under dbt_utils' name and argument,
which dbt-project-evaluator counts through the `primary_key_test_macros` var of dbt_project.yml."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import yaml

from metrify_assets.warehouse.paths import DBT_PROJECT_DIR
from metrify_assets.warehouse.project import ensure_manifest

COMPOSITE_MACRO = "macro.metrify.test_unique_combination_of_columns"


def manifest() -> dict[str, Any]:
    return dict(json.loads(ensure_manifest().read_bytes()))


def key_tests(nodes: dict[str, Any]) -> dict[str, list[tuple[str, Any, list[str]]]]:
    """(test name, column or columns, macros it uses) of every generic test, by the model it tests."""
    tests: dict[str, list[tuple[str, Any, list[str]]]] = defaultdict(list)
    for node in nodes.values():
        if node["resource_type"] == "test" and node.get("test_metadata"):
            kwargs = node["test_metadata"]["kwargs"]
            columns = kwargs.get("column_name") or kwargs.get("combination_of_columns")
            tests[node["attached_node"]].append(
                (node["test_metadata"]["name"], columns, node["depends_on"]["macros"])
            )
    return tests


def test_every_model_has_a_recognised_primary_key_test() -> None:
    nodes = manifest()["nodes"]
    tests = key_tests(nodes)
    untested = []
    for unique_id, node in nodes.items():
        if node["resource_type"] != "model":
            continue
        found = tests[unique_id]
        unique = {columns for name, columns, _ in found if name == "unique"}
        not_null = {columns for name, columns, _ in found if name == "not_null"}
        composite = [c for name, c, macros in found if COMPOSITE_MACRO in macros]
        if not (unique & not_null or composite):
            untested.append(node["name"])
        # dbt infers the key from the same tests (the manifest's primary_key).
        assert node["primary_key"], node["name"]
    assert untested == []


def test_the_evaluator_counts_the_composite_key_test() -> None:
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    accepted = project["vars"]["dbt_project_evaluator"]["primary_key_test_macros"]
    assert [COMPOSITE_MACRO.removeprefix("macro.")] in accepted
    assert ["dbt.test_unique", "dbt.test_not_null"] in accepted
