"""What each data endpoint's rows hold, as JSON Schema for `/openapi.json` (and so `/docs`, `/redoc`):
every column's name, type, whether it may be null, and what it means.

One source per kind of row, never a second list: a mart's columns come from its dbt contract
(`warehouse/mart_columns.py`, which dbt enforces on every build), an operational table's from the
message contract (`contracts.py`, with the descriptions of `schemas/<source>.v1.json`) and the
bookkeeping columns Metrify adds when it stores a record. A JSON page is `{"data": [row, ...],
"count": n, "next_cursor": ...}`; a CSV page has the same columns, one per field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from metrify_assets.contracts import CONTRACTS, SourceContract
from metrify_assets.serving.datasets import Dataset
from metrify_assets.serving.output import ARCHIVED_HEADER
from metrify_assets.serving.schemas import SCHEMA_FILES
from metrify_assets.warehouse.mart_columns import mart_columns


@dataclass(frozen=True)
class Column:
    """One column of a response row."""

    name: str
    type: str  # JSON Schema's: string, number, integer, boolean
    description: str = ""
    nullable: bool = True
    format: str | None = None  # date, date-time

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": [self.type, "null"] if self.nullable else self.type}
        if self.format:
            out["format"] = self.format
        if self.description:
            out["description"] = self.description
        return out


# (JSON type, format) of each data type a mart contract names. A time leaves the API in ISO 8601 with
# its offset, `+00:00` for the marts' UTC `timestamp` columns (`output._json`).
MART_TYPES: dict[str, tuple[str, str | None]] = {
    "text": ("string", None),
    "float": ("number", None),
    "bigint": ("integer", None),
    "integer": ("integer", None),
    "boolean": ("boolean", None),
    "date": ("string", "date"),
    "timestamp": ("string", "date-time"),
}
# The same for a message contract's field types, as stored (a list of texts is stored comma-joined).
FIELD_TYPES: dict[str, tuple[str, str | None]] = {
    "str": ("string", None),
    "int": ("integer", None),
    "float": ("number", None),
    "timestamp": ("string", "date-time"),
    "str_list": ("string", None),
}
BOOKKEEPING_COLUMNS = {
    c.name: c
    for c in (
        Column(
            "record_version",
            "integer",
            "The stored version of the record (its Kafka offset, or its place in a landed file's batch): "
            "a record replaces the stored one when its version is not older.",
            nullable=False,
        ),
        Column("batch_id", "string", "The ingest batch that stored this version.", nullable=False),
        Column("ingested_at", "string", "When this version was stored.", nullable=False, format="date-time"),
        Column(
            "quality_flags",
            "string",
            "The reasons a record rule flagged the record for review, comma-joined; null when none.",
        ),
    )
}


def dataset_row(dataset: Dataset) -> tuple[Column, ...]:
    """The columns of a dataset's rows: its mart's contract, or its operational table's columns."""
    if dataset.schema == "marts":
        return mart_row(dataset.table)
    if not dataset.columns:
        raise ValueError(f"{dataset.name}: an operational table's dataset names its columns")
    return table_row(dataset.table, dataset.columns)


def mart_row(model: str) -> tuple[Column, ...]:
    """The columns of mart `model`, typed and described as its contract is."""
    columns = []
    for c in mart_columns(model):
        if c.data_type not in MART_TYPES:
            raise ValueError(f"{model}.{c.name}: no JSON type for data_type {c.data_type!r}")
        json_type, fmt = MART_TYPES[c.data_type]
        columns.append(Column(c.name, json_type, c.description, nullable=not c.not_null, format=fmt))
    return tuple(columns)


@cache
def _message_descriptions(source: str) -> dict[str, str]:
    """Each field's description in the source's message schema, up to its record rules (a stored
    value has passed them; docs/quality.md lists them)."""
    record = orjson.loads(SCHEMA_FILES[source].read_bytes())["$defs"]["record"]["properties"]
    return {name: str(spec.get("description", "")).split(" Rules:")[0] for name, spec in record.items()}


def stored_row(contract: SourceContract, names: Iterable[str]) -> tuple[Column, ...]:
    """The columns `names` of the source's operational table: its contract's fields and bookkeeping."""
    described = _message_descriptions(contract.source)
    columns = []
    for name in names:
        if name in BOOKKEEPING_COLUMNS:
            columns.append(BOOKKEEPING_COLUMNS[name])
            continue
        field = contract.field(name)
        json_type, fmt = FIELD_TYPES[field.type]
        note = " Stored comma-joined." if field.type == "str_list" else ""
        nullable = not field.required and field.default is None
        columns.append(Column(name, json_type, described.get(name, "") + note, nullable, fmt))
    return tuple(columns)


def table_row(table: str, names: Iterable[str]) -> tuple[Column, ...]:
    """`stored_row` of the source whose operational table is `table`."""
    contract = next((c for c in CONTRACTS.values() if c.table == table), None)
    if contract is None:
        raise ValueError(f"ops.{table} is no source's table")
    return stored_row(contract, names)


def row_schema(columns: Sequence[Column]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {c.name: c.schema() for c in columns},
        "required": [c.name for c in columns],
    }


NEXT_CURSOR = "The next page's `cursor`; null on the last page."
PAGE_HEADERS = {
    "X-Next-Cursor": {
        "description": "The next page's `cursor`; absent on the last page.",
        "schema": {"type": "string"},
    },
    "Link": {"description": 'The next page\'s address: `<...>; rel="next"`.', "schema": {"type": "string"}},
    "X-Row-Count": {
        "description": "Rows in a whole-result CSV download (CSV without `limit` or `cursor`); absent on a page.",
        "schema": {"type": "integer"},
    },
}


ARCHIVED_DAYS = (
    "The days of the request's span (from..to; unbounded without them) whose rows left PostgreSQL for "
    "the lake (`metrify lifecycle`) and were not restored, in order: the rows of those days here are "
    "missing, or only late ones. Empty when every day is hot. `metrify restore` brings days back; the "
    "marts (/v1/consumption/..., /stability, /conditions) keep their history (docs/api.md#archived-days). "
    "Days are the meter's local days for readings, UTC days for grid and weather samples."
)
ARCHIVED_DAYS_SCHEMA = {
    "type": "array",
    "items": {"type": "string", "format": "date"},
    "description": ARCHIVED_DAYS,
}
ARCHIVED_HEADER_DOC = {
    ARCHIVED_HEADER: {
        "description": "`archived_days` as ranges of consecutive days (`2026-03-01..2026-03-03, 2026-03-05`), "
        "on JSON and CSV alike; absent when every day of the span is hot.",
        "schema": {"type": "string"},
    }
}


def page_responses(
    columns: Sequence[Column], description: str, archived: bool = False
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a paged route whose rows are `columns`: its 200 in JSON and in CSV. `archived`:
    the route serves hot rows and says which days of its span left them (`archived_days`)."""
    page: dict[str, Any] = {
        "type": "object",
        "properties": {
            "data": {"type": "array", "items": row_schema(columns)},
            "count": {"type": "integer", "minimum": 0, "description": "Rows in this page."},
            "next_cursor": {"type": ["string", "null"], "description": NEXT_CURSOR},
        },
        "required": ["data", "count", "next_cursor"],
    }
    if archived:
        page["properties"]["archived_days"] = ARCHIVED_DAYS_SCHEMA
        page["required"].append("archived_days")
    csv = {
        "schema": {
            "type": "string",
            "description": "Without `limit` or `cursor`: every row of the query, streamed (422 `too_many_rows` "
            "over METRIFY_API_CSV_MAX_ROWS); with either, one page.",
        },
        "example": ",".join(c.name for c in columns) + "\n",
    }
    return {
        200: {
            "description": description,
            "headers": {**PAGE_HEADERS, **ARCHIVED_HEADER_DOC} if archived else PAGE_HEADERS,
            "content": {"application/json": {"schema": page}, "text/csv": csv},
        }
    }


def single_response(
    columns: Sequence[Column], what: str, archived: str | None = None
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route answering one row, as `{"data": row}`; `archived`: the route serves a
    hot row and also answers `archived_days`, so described."""
    body: dict[str, Any] = {
        "type": "object",
        "properties": {"data": row_schema(columns)},
        "required": ["data"],
    }
    if archived is None:
        return {200: {"description": what, "content": {"application/json": {"schema": body}}}}
    body["properties"]["archived_days"] = {**ARCHIVED_DAYS_SCHEMA, "description": archived}
    body["required"].append("archived_days")
    return {
        200: {
            "description": what,
            "headers": ARCHIVED_HEADER_DOC,
            "content": {"application/json": {"schema": body}},
        }
    }
