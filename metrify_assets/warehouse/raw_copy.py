"""Copy the operational PostgreSQL tables into Snowflake's raw schema, incrementally and idempotently.

Each table is copied by its primary key with delete+insert: the rows changed since the raw copy's
watermark land in a scratch table, the raw rows with the same keys are deleted, the new ones inserted.
Re-running copies the same rows again and leaves the raw table unchanged. Column types come from
PostgreSQL's catalogue, so the raw tables follow the `ops` schema (storage/migrations/) without a second definition.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

RAW_SCHEMA = "RAW"
CHUNK_ROWS = 5000

# PostgreSQL `information_schema.columns.data_type` -> Snowflake type.
SNOWFLAKE_TYPES = {
    "text": "VARCHAR",
    "timestamp with time zone": "TIMESTAMP_TZ",
    "double precision": "FLOAT",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "jsonb": "VARCHAR",
}
# Read as text: psycopg decodes JSON into Python objects, which the Snowflake connector cannot bind.
READ_AS_TEXT = frozenset({"jsonb"})

# Rows of these tables also change when a later batch replaces them (a newer record_version keeps the
# first `ingested_at`), so a batch processed since the watermark marks its rows as changed too.
CHANGED_BY_BATCH = "OR batch_id IN (SELECT batch_id FROM ops.ingest_ledger WHERE processed_at >= %(since)s)"


@dataclass(frozen=True)
class RawTable:
    """An `ops` table, its key, and the column that says when a row last changed (None: copy all).

    The key is what a changed row replaces in the raw copy: the primary key, or a coarser one when
    the writer re-writes groups of rows (VEE's meter-days)."""

    name: str
    key: tuple[str, ...]
    changed_at: str | None
    changed_by_batch: bool = False
    # The table whose groups (rows of one `key`) the writer re-writes together with this one's, in one
    # transaction: each group changed there since its raw copy replaces this table's raw rows of the
    # group, those it has now or none (a group can lose all its rows, which no changed row would say).
    # Its copy takes the groups changed since that table's raw watermark as its copy found it.
    group_of: str | None = None

    def changed_rows_sql(self, columns: Sequence[str], incremental: bool) -> str:
        select = f"SELECT {', '.join(columns)} FROM ops.{self.name}"
        if self.group_of is not None:
            return f"{select} WHERE ({', '.join(self.key)}) IN ({self.changed_groups_sql(incremental)})"
        if not incremental or self.changed_at is None:
            return select
        batch = f" {CHANGED_BY_BATCH}" if self.changed_by_batch else ""
        return f"{select} WHERE {self.changed_at} >= %(since)s{batch}"

    def changed_groups_sql(self, incremental: bool) -> str:
        """The keys of the groups `group_of`'s writer re-wrote since `since` (every group without it)."""
        leader = RAW_BY_NAME[str(self.group_of)]
        select = f"SELECT DISTINCT {', '.join(self.key)} FROM ops.{leader.name}"
        return f"{select} WHERE {leader.changed_at} >= %(since)s" if incremental else select


# The dbt sources (`models/staging/ops/_ops__sources.yml`).
RAW_TABLES = (
    RawTable("meters", ("meter_id",), "updated_at"),
    RawTable("meter_readings", ("meter_id", "reading_start"), "ingested_at", changed_by_batch=True),
    RawTable("grid_status", ("grid_node_id", "measured_at"), "ingested_at", changed_by_batch=True),
    RawTable("weather_observations", ("station_id", "observed_at"), "ingested_at", changed_by_batch=True),
    RawTable("quarantine", ("batch_id", "record_index"), "quarantined_at"),
    RawTable("anomaly_scores", ("meter_id", "reading_start"), "scored_at"),
    # Re-written in place by the enrichment asset, which stamps `enriched_at` (migration 0014).
    RawTable("enriched_meter_readings", ("meter_id", "reading_start"), "enriched_at"),
    RawTable("ingest_ledger", ("batch_id",), "processed_at"),
    # VEE re-writes whole meter-days, stamping every interval's `processed_at`, and drops intervals
    # no longer in a day: keyed by meter-day, a changed day replaces all its raw intervals.
    RawTable("vee_readings", ("meter_id", "local_date"), "processed_at"),
    RawTable("vee_days", ("meter_id", "local_date"), "processed_at"),
    # The grid asset re-writes whole UTC days of node-hours: keyed by node-day like VEE's meter-days.
    RawTable("grid_stability", ("grid_node_id", "day"), "processed_at"),
    # The samples the grid asset left out as sensor faults, re-written with its node-days: replaced
    # by node-day as grid_stability's are, and a node-day whose last one a reviewer approved has none.
    RawTable("grid_excluded_samples", ("grid_node_id", "day"), None, group_of="grid_stability"),
    # Events are few, and a re-run may remove one (a late sample ended an excursion sooner) or end one
    # that an earlier day owns: copied in full, so the copy never keeps an event `ops` no longer has.
    RawTable("grid_state_events", ("grid_node_id", "started_at"), None),
    # The forecast asset re-writes a series' day whole (every method's quarter-hours, its backtest,
    # its actuals), stamping each row, and a re-run may drop a method (a model no longer fitted):
    # keyed by series-day like VEE's meter-days.
    RawTable("load_forecasts", ("region", "segment", "local_date"), "forecast_at"),
    RawTable("load_forecast_backtests", ("region", "segment", "local_date"), "forecast_at"),
    RawTable("load_actuals", ("region", "segment", "local_date"), "loaded_at"),
    # The lifecycle's days: a few rows a day, whose hot deletion and restore stamps change in place
    # (the grid and weather marts keep the days deleted from `ops`): copied in full.
    RawTable("lifecycle_days", ("dataset", "day"), None),
)
RAW_BY_NAME = {table.name: table for table in RAW_TABLES}


def pg_columns(conn: psycopg.Connection, table: str) -> list[tuple[str, str, str]]:
    """(column, Snowflake type, select expression) of an `ops` table, in table order."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'ops' AND table_name = %s ORDER BY ordinal_position",
            (table,),
        )
        return [
            (name, SNOWFLAKE_TYPES[dtype], f"{name}::text" if dtype in READ_AS_TEXT else name)
            for name, dtype in cur.fetchall()
        ]


def chunks(cursor: psycopg.Cursor[Any]) -> Iterator[list[tuple[Any, ...]]]:
    while rows := cursor.fetchmany(CHUNK_ROWS):
        yield rows


def add_new_columns(cur: Any, target: str, columns: Sequence[tuple[str, str, str]]) -> list[str]:
    """Columns a later migration added to the `ops` table, added to its raw copy made before it
    (empty in the rows copied before; a new change column then copies the table once in full)."""
    cur.execute(f"SELECT * FROM {target} LIMIT 0")
    present = {d[0].lower() for d in cur.description}
    added = [name for name, _, _ in columns if name.lower() not in present]
    for name, sf_type, _ in columns:
        if name in added:
            cur.execute(f"ALTER TABLE {target} ADD COLUMN {name} {sf_type}")
    return added


def raw_table(pg: psycopg.Connection, sf: Any, name: str) -> list[tuple[str, str, str]]:
    """Create RAW.<name> as the `ops` table is if it does not exist, with the columns a later migration
    added -> the table's `pg_columns`."""
    columns = pg_columns(pg, name)
    definition = ", ".join(f"{column} {sf_type}" for column, sf_type, _ in columns)
    cur = sf.cursor()
    cur.execute(f"CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{name} ({definition})")
    add_new_columns(cur, f"{RAW_SCHEMA}.{name}", columns)
    return columns


def _delete_groups(pg: psycopg.Connection, cur: Any, table: RawTable, since: datetime) -> None:
    """Delete RAW.<table>'s rows of the groups `group_of`'s writer re-wrote since `since`."""
    target, groups = f"{RAW_SCHEMA}.{table.name}", f"{RAW_SCHEMA}.{table.name}__groups"
    types = {name: sf_type for name, sf_type, _ in pg_columns(pg, table.name)}
    cur.execute(f"CREATE OR REPLACE TABLE {groups} ({', '.join(f'{k} {types[k]}' for k in table.key)})")
    insert = f"INSERT INTO {groups} ({', '.join(table.key)}) VALUES ({', '.join(['%s'] * len(table.key))})"
    with pg.cursor() as pg_cur:
        pg_cur.execute(table.changed_groups_sql(incremental=True).encode(), {"since": since})
        for rows in chunks(pg_cur):
            cur.executemany(insert, rows)
    matches = " AND ".join(f"{target}.{k} = g.{k}" for k in table.key)
    cur.execute(f"DELETE FROM {target} USING {groups} AS g WHERE {matches}")
    cur.execute(f"DROP TABLE {groups}")


def watermark(pg: psycopg.Connection, sf: Any, table: RawTable) -> datetime | None:
    """The newest `changed_at` of RAW.<table> (created if missing): its copy takes the rows changed
    since (None: no change column, or nothing copied yet)."""
    raw_table(pg, sf, table.name)
    if table.changed_at is None:
        return None
    row = sf.cursor().execute(f"SELECT max({table.changed_at}) FROM {RAW_SCHEMA}.{table.name}").fetchone()
    return None if row is None else row[0]


def copy_table(pg: psycopg.Connection, sf: Any, table: RawTable, since: datetime | None) -> int:
    """Copy one table's rows changed since `since` (its `watermark`, or its `group_of`'s; None: all)
    into RAW.<table>; returns the number of rows copied.

    `sf` is a Snowflake DB-API connection (pyformat parameters).
    """
    columns = raw_table(pg, sf, table.name)
    names = [name for name, _, _ in columns]
    target, scratch = f"{RAW_SCHEMA}.{table.name}", f"{RAW_SCHEMA}.{table.name}__incoming"
    cur = sf.cursor()
    definition = ", ".join(f"{name} {sf_type}" for name, sf_type, _ in columns)
    cur.execute(f"CREATE OR REPLACE TABLE {scratch} ({definition})")
    placeholders = ", ".join(["%s"] * len(names))
    insert = f"INSERT INTO {scratch} ({', '.join(names)}) VALUES ({placeholders})"
    copied = 0
    with pg.cursor() as pg_cur:
        selected = [expression for _, _, expression in columns]
        pg_cur.execute(table.changed_rows_sql(selected, since is not None).encode(), {"since": since})
        for rows in chunks(pg_cur):
            cur.executemany(insert, rows)
            copied += len(rows)
    if table.group_of is not None and since is not None:
        _delete_groups(pg, cur, table, since)
    elif table.changed_at is None:
        cur.execute(f"DELETE FROM {target}")
    else:
        matches = " AND ".join(f"{target}.{k} = i.{k}" for k in table.key)
        cur.execute(f"DELETE FROM {target} USING {scratch} AS i WHERE {matches}")
    listed = ", ".join(names)
    cur.execute(f"INSERT INTO {target} ({listed}) SELECT {listed} FROM {scratch}")
    cur.execute(f"DROP TABLE {scratch}")
    return copied


def copy_all(pg: psycopg.Connection, sf: Any) -> dict[str, int]:
    """Copy every dbt source table; returns rows copied per table."""
    sf.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    # Every watermark before any copy: a table copied with another's groups takes that one's as it was.
    since = {table.name: watermark(pg, sf, table) for table in RAW_TABLES}
    return {
        table.name: copy_table(pg, sf, table, since[table.group_of or table.name]) for table in RAW_TABLES
    }
