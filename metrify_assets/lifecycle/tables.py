"""The tiered datasets' hot tables: which rows make a day, read, checksummed, deleted and restored.

A meter reading belongs to its meter's local day (as every meter asset), a grid or weather sample to
its UTC day. Every column is copied, `ingested_at` included, so a restored day is the same rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from metrify_assets.meters.days import DAY_WINDOW, day_params
from metrify_assets.storage.frames import read_frame


@dataclass(frozen=True)
class TieredTable:
    dataset: str
    table: str
    key: tuple[str, str]
    columns: tuple[str, ...]
    day_sql: str  # rows of days %(first)s..%(last)s, over the table aliased `r`
    meter_column: str | None = None  # a legal hold can name one meter

    def select_sql(self, for_update: bool = False) -> str:
        """The rows of the days; locked in key order when `for_update` (two writers of a day wait for
        each other instead of deadlocking), else in no order: `read_days` sorts them, which took
        PostgreSQL more than half of the query's time (two sorts, spilling to disk at the default
        work_mem)."""
        cols = ", ".join(f"r.{c}" for c in self.columns)
        sql = f"SELECT {cols} FROM {self.day_sql}"
        return sql + (f" ORDER BY r.{self.key[0]}, r.{self.key[1]} FOR UPDATE OF r" if for_update else "")

    def read_days(
        self, conn: psycopg.Connection, first: date, last: date, for_update: bool = False
    ) -> pd.DataFrame:
        """The days' rows in key order (by code point, whatever the database's collation)."""
        rows = read_frame(conn, self.select_sql(for_update), day_params(first, last))
        return rows.sort_values(list(self.key), kind="stable", ignore_index=True)

    def delete_rows(self, conn: psycopg.Connection, rows: pd.DataFrame) -> int:
        """Delete exactly these rows (by key and record version): a row replaced by a newer version
        since it was read stays."""
        if not len(rows):
            return 0
        k0, k1 = self.key
        cur = conn.execute(
            f"DELETE FROM {self.table} t USING unnest(%s::text[], %s::timestamptz[], %s::bigint[]) "
            f"AS d(k0, k1, v) WHERE t.{k0} = d.k0 AND t.{k1} = d.k1 AND t.record_version = d.v",
            (
                rows[k0].astype(str).tolist(),
                list(rows[k1]),
                rows["record_version"].astype("int64").tolist(),
            ),
        )
        return int(cur.rowcount)

    def restore_rows(self, conn: psycopg.Connection, rows: pd.DataFrame) -> int:
        """Insert archived rows back; a key already hot with the same or a newer version keeps its row
        (so a restore never overwrites a newer reading, and running it again changes nothing)."""
        if not len(rows):
            return 0
        cols = ", ".join(self.columns)
        k0, k1 = self.key
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in self.columns if c not in self.key)
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS lifecycle_restore (LIKE {self.table}) ON COMMIT DROP"
            )
            cur.execute("TRUNCATE lifecycle_restore")
            with cur.copy(f"COPY lifecycle_restore ({cols}) FROM STDIN") as copy:
                for record in rows[list(self.columns)].itertuples(index=False, name=None):
                    copy.write_row([_db_value(v) for v in record])
            cur.execute(
                f"INSERT INTO {self.table} ({cols}) SELECT {cols} FROM lifecycle_restore "
                f"ON CONFLICT ({k0}, {k1}) DO UPDATE SET {updates} "
                f"WHERE {self.table}.record_version < EXCLUDED.record_version"
            )
            written = int(cur.rowcount)
            cur.execute("DROP TABLE lifecycle_restore")
        return written


def _db_value(value: object) -> object:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


_UTC_DAY = (
    "r.{col} >= (%(first)s::date::timestamp AT TIME ZONE 'UTC') "
    "AND r.{col} < ((%(last)s::date + 1)::timestamp AT TIME ZONE 'UTC')"
)

TABLES: dict[str, TieredTable] = {
    "meter_readings": TieredTable(
        dataset="meter_readings",
        table="ops.meter_readings",
        key=("meter_id", "reading_start"),
        columns=(
            "meter_id",
            "reading_start",
            "interval_minutes",
            "energy_kwh",
            "direction",
            "register_kwh",
            "voltage_v",
            "power_factor",
            "status_flags",
            "source",
            "record_version",
            "batch_id",
            "ingested_at",
            "quality_flags",
        ),
        day_sql=f"ops.meter_readings r LEFT JOIN ops.meters m USING (meter_id) WHERE {DAY_WINDOW}",
        meter_column="meter_id",
    ),
    "grid_status": TieredTable(
        dataset="grid_status",
        table="ops.grid_status",
        key=("grid_node_id", "measured_at"),
        columns=(
            "grid_node_id",
            "measured_at",
            "frequency_hz",
            "voltage_v",
            "load_mw",
            "capacity_mw",
            "record_version",
            "batch_id",
            "ingested_at",
            "quality_flags",
        ),
        day_sql="ops.grid_status r WHERE " + _UTC_DAY.format(col="measured_at"),
    ),
    "weather_observations": TieredTable(
        dataset="weather_observations",
        table="ops.weather_observations",
        key=("station_id", "observed_at"),
        columns=(
            "station_id",
            "observed_at",
            "temperature_c",
            "humidity_pct",
            "pressure_hpa",
            "wind_speed_ms",
            "precipitation_mm",
            "record_version",
            "batch_id",
            "ingested_at",
            "quality_flags",
        ),
        day_sql="ops.weather_observations r WHERE " + _UTC_DAY.format(col="observed_at"),
    ),
}


def content_checksum(frame: pd.DataFrame, key: tuple[str, str]) -> str:
    """SHA-256 over the rows in key order, column by column, each in one canonical form, so the rows
    read from PostgreSQL and the same rows read back from Parquet give the same checksum whatever
    containers each side chose: timestamps as UTC microseconds, numbers as float64 or int64 bytes,
    text as UTF-8, and a null mask per column (an all-null column is its mask alone)."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(frame.columns).encode())
    if not len(frame):
        return digest.hexdigest()
    ordered = frame.sort_values(list(key), kind="stable").reset_index(drop=True)
    for name in ordered.columns:
        digest.update(_column_digest(ordered[name]))
    return digest.hexdigest()


def _column_digest(column: pd.Series) -> bytes:
    missing = column.isna().to_numpy()
    digest = hashlib.sha256(np.packbits(missing).tobytes())
    if missing.all():
        return digest.digest()
    if column.dtype == object:  # values PostgreSQL or a concat left in Python objects: their own kind
        first = column[~missing].iloc[0]
        if isinstance(first, (pd.Timestamp, datetime)):
            column = pd.to_datetime(column, utc=True)
        elif isinstance(first, (int, float, np.number)) and not isinstance(first, bool):
            column = pd.to_numeric(column)
    if pd.api.types.is_datetime64_any_dtype(column):
        utc = column.dt.tz_convert("UTC") if column.dt.tz is not None else column.dt.tz_localize("UTC")
        kind, values = b"t", utc.astype("datetime64[us, UTC]").to_numpy(dtype="int64", na_value=0)
    elif pd.api.types.is_float_dtype(column):
        kind, values = b"f", column.to_numpy(dtype="float64", na_value=0.0)
    elif pd.api.types.is_integer_dtype(column) or pd.api.types.is_bool_dtype(column):
        kind, values = b"i", column.to_numpy(dtype="int64", na_value=0)
    elif isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow":
        # The same bytes as the join below, joined by Arrow: no Python string per value.
        values = pa.array(column.array)  # chunked once frames were concatenated
        values = (values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values).fill_null("")
        whole = pa.ListArray.from_arrays(pa.array([0, len(values)], pa.int32()), values)
        digest.update(b"s")
        digest.update(pc.binary_join(whole, pa.scalar("\x1e", values.type))[0].as_buffer())
        return digest.digest()
    else:
        text = "\x1e".join(column.to_numpy(dtype=object, na_value="").astype(str).tolist())
        digest.update(b"s" + text.encode())
        return digest.digest()
    little_endian = values.dtype.newbyteorder("<")  # the same bytes on every machine
    digest.update(kind + np.ascontiguousarray(np.where(missing, 0, values), dtype=little_endian).tobytes())
    return digest.digest()
