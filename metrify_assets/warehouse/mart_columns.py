"""The marts' contracts as Python reads them: each column's name, dbt data type, description and
whether it may be null, from the YAML beside the models (`models/marts/_marts__models.yml`).

dbt enforces these contracts when it builds a mart, so they are what the marts hold; the API documents
its responses from them (`serving/row_schemas.py`) rather than from a second list of columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]  # PyYAML comes with dagster; no stubs

from metrify_assets.warehouse.paths import DBT_PROJECT_DIR

MARTS_YAML = DBT_PROJECT_DIR / "models" / "marts" / "_marts__models.yml"


@dataclass(frozen=True)
class MartColumn:
    name: str
    data_type: str  # as the contract names it: text, float, bigint, integer, boolean, date, timestamp
    description: str
    not_null: bool  # a `not_null` test or constraint: the column never holds null


def _not_null(column: dict[str, Any]) -> bool:
    tests = [*column.get("data_tests", []), *column.get("tests", [])]
    named = {t if isinstance(t, str) else next(iter(t)) for t in tests}
    constrained = {c.get("type") for c in column.get("constraints", [])}
    return "not_null" in named or "not_null" in constrained


@cache
def _contracted() -> dict[str, tuple[MartColumn, ...]]:
    with MARTS_YAML.open(encoding="utf-8") as f:
        models = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["models"]
    return {
        model["name"]: tuple(
            MartColumn(
                c["name"], c["data_type"], " ".join(str(c.get("description", "")).split()), _not_null(c)
            )
            for c in model["columns"]
        )
        for model in models
        if model.get("config", {}).get("contract", {}).get("enforced")
    }


def mart_columns(model: str) -> tuple[MartColumn, ...]:
    """The contracted columns of mart `model`, in the contract's order (the mart's own)."""
    try:
        return _contracted()[model]
    except KeyError:
        raise ValueError(f"{model} is not a mart with an enforced contract in {MARTS_YAML.name}") from None
