"""Read query results into DataFrames over a psycopg connection (no SQLAlchemy needed).

A result of plain columns (text, integers, floats, booleans, dates, timestamps) travels as one
`COPY ... TO STDOUT (FORMAT csv)` parsed by Arrow's CSV reader: no Python object per value, which
was most of the time of reading a day of readings. Anything else (numeric, JSON, arrays, a value CSV
cannot carry exactly, a connection not in UTF-8) is read through binary results. Both give the
same frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import ClientCursor
from psycopg.abc import PQGen
from psycopg.adapt import Loader
from psycopg.pq import ExecStatus, Format
from psycopg.pq.abc import PGconn, PGresult
from psycopg.waiting import WAIT_R

Params = Mapping[str, Any] | Sequence[Any] | None

_PG_EPOCH_US = 946_684_800_000_000  # PostgreSQL counts microseconds from 2000-01-01, numpy from 1970
_NAT = np.iinfo(np.int64).min  # numpy's NaT: a NULL timestamp

# PostgreSQL type -> the Arrow type its CSV text parses to exactly (float4 widens after parsing, as
# psycopg widens it to a Python float).
_CSV_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    "int2": pa.int64(),
    "int4": pa.int64(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}


class _MicrosLoader(Loader):
    """A binary timestamp as its microsecond count: no `datetime` object per value for pandas to parse
    back."""

    format = Format.BINARY

    def load(self, data: Any) -> int:
        return int.from_bytes(data, "big", signed=True)


def read_frame(conn: psycopg.Connection, query: str, params: Params = None) -> pd.DataFrame:
    """Run `query` (a SELECT) and return its rows with the cursor's column names (timestamps stay
    tz-aware, in the session's time zone, as psycopg gives them)."""
    if conn.info.encoding != "utf-8":  # Arrow reads UTF-8 only
        return _read_binary(conn, query, params)
    # COPY takes no server-side parameters: the describe and the COPY both run the query with its
    # parameters bound into the text, so both see the same statement.
    text = query if params is None else ClientCursor(conn).mogrify(query, params)
    text = "(\n" + text.rstrip().rstrip(";") + "\n)"  # a trailing comment or semicolon stays inside
    with conn.cursor() as cur:  # the result's columns, without running the query
        cur.execute(f"SELECT * FROM {text} AS q LIMIT 0".encode())
        description = cur.description or []
    types = _csv_types(conn, description)
    if types is not None:
        try:
            return _read_csv(conn, text, description, types)
        except pa.ArrowInvalid:  # a value CSV text cannot carry exactly (a BC timestamp, say)
            return _read_binary(conn, query, params)
    return _read_binary(conn, query, params)


def _csv_types(conn: psycopg.Connection, description: Sequence[Any]) -> list[pa.DataType] | None:
    """The Arrow type of each column, or None when a column is not one the CSV path reads."""
    names = {}
    for name in _CSV_TYPES:
        info = conn.adapters.types.get(name)
        if info is not None:
            names[info.oid] = name
    kinds = [names.get(column.type_code) for column in description]
    if not kinds or None in kinds:
        return None
    return [_CSV_TYPES[kind] for kind in kinds if kind is not None]


def _read_csv(
    conn: psycopg.Connection, query: str, description: Sequence[Any], types: list[pa.DataType]
) -> pd.DataFrame:
    names = [column.name for column in description]
    # Exact floats and ISO dates whatever the server's defaults, for the transaction only: the
    # caller's (the describe opened it), or one of its own on an autocommit connection.
    with conn.transaction() if conn.autocommit else nullcontext(), conn.cursor() as cur:
        cur.execute(
            "SELECT set_config('extra_float_digits', '1', true), set_config('DateStyle', 'ISO', true)"
        )
        with cur.copy(f"COPY {query} TO STDOUT (FORMAT csv)".encode()):
            body = conn.wait(_copy_out(conn.pgconn, conn.info.encoding))
    if not body:
        return pd.DataFrame([], columns=names)
    keys = [f"c{i}" for i in range(len(names))]  # by position: a query may name two columns alike
    table = pa_csv.read_csv(
        pa.BufferReader(body),
        read_options=pa_csv.ReadOptions(column_names=keys),
        # A one-column row holding NULL is an empty line: a row, not a line to skip.
        parse_options=pa_csv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict(zip(keys, types, strict=True)),
            null_values=[""],  # PostgreSQL writes NULL unquoted and empty text as ""
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )
    columns: dict[int, Any] = {}
    for i, (column, kind) in enumerate(zip(table.columns, types, strict=True)):
        if kind == pa.float32():
            column = column.cast(pa.float64())
        if column.null_count == len(column) and not pa.types.is_timestamp(kind):
            columns[i] = [None] * len(column)  # as psycopg's rows give an all-NULL column
            continue
        values = column.to_pandas()
        if getattr(kind, "tz", None):
            values = values.dt.tz_convert(conn.info.timezone)
        columns[i] = values
    frame = pd.DataFrame(columns)
    frame.columns = pd.Index(names)
    return frame


def _copy_out(pgconn: PGconn, encoding: str) -> PQGen[bytearray]:
    """A `COPY ... TO STDOUT`'s rows, and its command's result checked: run by `Connection.wait` inside
    `Cursor.copy`, as psycopg's own `copy_from` is, but one generator for every row taken while
    libpq has them buffered. psycopg's `Copy.read` costs a wait and two generators per row: about
    5 us each, most of reading a day of 100,000 readings."""
    body = bytearray()  # grown row by row: joining 200,000 row buffers at the end took 3x longer
    while True:
        nbytes, data = pgconn.get_copy_data(1)
        if nbytes > 0:
            body += data
        elif nbytes == 0:  # no whole row buffered yet
            yield from _more_input(pgconn)
        else:  # -1: the rows are done; the command's result follows
            break
    # The results, as psycopg's own `_fetch_many` takes them (kept in step with it).
    results: list[PGresult] = []
    while True:
        try:
            while pgconn.is_busy():
                yield from _more_input(pgconn)
        except psycopg.DatabaseError:
            # The server closed the connection after sending its error (a terminated backend):
            # that error is the one to raise, not the closed connection's.
            if any(r.status == ExecStatus.FATAL_ERROR for r in results):
                break
            raise
        if (result := pgconn.get_result()) is None:
            break
        results.append(result)
    for result in results:  # a failure after the first rows were sent
        if result.status != ExecStatus.COMMAND_OK:
            raise psycopg.errors.error_from_result(result, encoding=encoding)
    if len(results) != 1:  # as psycopg's copy_from says it
        raise psycopg.ProgrammingError("you cannot mix COPY with other operations")
    return body


def _more_input(pgconn: PGconn) -> PQGen[None]:
    """Wait until the connection can be read, then read what arrived into libpq's buffer."""
    while not (yield WAIT_R):
        continue
    pgconn.consume_input()


def _read_binary(conn: psycopg.Connection, query: str, params: Params) -> pd.DataFrame:
    with conn.cursor(binary=True) as cur:
        for name in ("timestamptz", "timestamp"):
            cur.adapters.register_loader(name, _MicrosLoader)
        cur.execute(query.encode(), params)
        description = cur.description or []
        rows = cur.fetchall()
    names = [c.name for c in description]
    if not rows:
        return pd.DataFrame(rows, columns=names)
    types = conn.adapters.types
    timestamp_oids = {types["timestamptz"].oid: True, types["timestamp"].oid: False}
    columns: dict[int, Any] = {}  # by position: a query may name two columns alike
    for i, (column, values) in enumerate(zip(description, zip(*rows, strict=True), strict=True)):
        aware = timestamp_oids.get(column.type_code)
        if aware is None:
            columns[i] = values
            continue
        micros = np.fromiter(
            (_NAT if v is None else v + _PG_EPOCH_US for v in values), dtype=np.int64, count=len(values)
        )
        stamps = pd.DatetimeIndex(micros.view("datetime64[us]"))
        columns[i] = stamps.tz_localize("UTC").tz_convert(conn.info.timezone) if aware else stamps
    frame = pd.DataFrame(columns)
    frame.columns = pd.Index(names)
    return frame
