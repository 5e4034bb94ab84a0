"""The response rows' schemas (serving/row_schemas.py) as pure functions: no database, no app.
tests/serving/test_api.py checks them against real pages and PostgreSQL's columns."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from metrify_assets.contracts import BOOKKEEPING, CONTRACTS
from metrify_assets.serving.datasets import DATASETS
from metrify_assets.serving.readings import SERIES_COLUMNS
from metrify_assets.serving.row_schemas import (
    BOOKKEEPING_COLUMNS,
    Column,
    dataset_row,
    mart_row,
    page_responses,
    row_schema,
    stored_row,
)
from metrify_assets.warehouse import mart_columns


def test_every_dataset_documents_each_column_it_serves_once() -> None:
    for dataset in DATASETS.values():
        names = [c.name for c in dataset_row(dataset)]
        assert len(names) == len(set(names)) and set(dataset.key) <= set(names), dataset.name
        if dataset.columns:
            assert names == list(dataset.columns), dataset.name
        else:
            assert names == [c.name for c in mart_columns.mart_columns(dataset.table)], dataset.name
        assert all(c.description for c in dataset_row(dataset)), dataset.name


def test_bookkeeping_columns_are_the_contracts() -> None:
    assert set(BOOKKEEPING_COLUMNS) == set(BOOKKEEPING)
    assert len(SERIES_COLUMNS) == len(set(SERIES_COLUMNS))


def test_a_field_stored_with_a_default_is_never_null_and_an_optional_one_may_be() -> None:
    columns = {
        c.name: c for c in stored_row(CONTRACTS["meter_readings"], CONTRACTS["meter_readings"].columns)
    }
    assert not columns["direction"].nullable  # stored as "import" when a record leaves it out
    assert columns["voltage_v"].nullable and not columns["energy_kwh"].nullable
    assert columns["reading_start"].format == "date-time"
    assert "Rules:" not in columns["energy_kwh"].description  # a stored value has passed them
    assert "comma-joined" in columns["status_flags"].description.lower()


def test_a_row_schema_accepts_its_rows_and_refuses_a_wrong_type_or_a_null_where_none_is() -> None:
    columns = (
        Column("meter_id", "string", "id", nullable=False),
        Column("kwh", "number", "energy"),
        Column("day", "string", "day", nullable=False, format="date"),
    )
    validator = Draft202012Validator(row_schema(columns))
    assert validator.is_valid({"meter_id": "M", "kwh": None, "day": "2026-03-28"})
    assert not validator.is_valid({"meter_id": None, "kwh": 1.0, "day": "2026-03-28"})
    assert not validator.is_valid({"meter_id": "M", "kwh": "1.0", "day": "2026-03-28"})
    assert not validator.is_valid({"meter_id": "M", "kwh": 1.0})  # every column is in every row
    ok = page_responses(columns, "A page.")[200]
    assert ok["content"]["text/csv"]["example"] == "meter_id,kwh,day\n"
    assert set(ok["headers"]) == {"X-Next-Cursor", "Link", "X-Row-Count"}


@pytest.mark.parametrize(
    ("column", "not_null"),
    [
        ({"name": "a", "data_tests": ["unique", "not_null"]}, True),
        ({"name": "a", "data_tests": [{"not_null": {"config": {"severity": "warn"}}}]}, True),
        ({"name": "a", "tests": ["not_null"]}, True),
        ({"name": "a", "constraints": [{"type": "not_null"}]}, True),
        ({"name": "a", "data_tests": ["unique"]}, False),
        ({"name": "a"}, False),
    ],
)
def test_not_null_is_read_from_tests_or_constraints(column: dict[str, object], not_null: bool) -> None:
    assert mart_columns._not_null(column) is not_null


def test_a_mart_without_an_enforced_contract_or_a_type_without_a_json_type_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match="enforced contract"):
        mart_columns.mart_columns("dim_date")  # a calendar the API does not serve, no contract
    odd = (mart_columns.MartColumn("x", "numeric(10,2)", "x", True),)
    monkeypatch.setattr(mart_columns, "_contracted", lambda: {"fct_odd": odd})
    with pytest.raises(ValueError, match="no JSON type for data_type 'numeric"):
        mart_row("fct_odd")
