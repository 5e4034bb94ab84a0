"""The data API's reads through the Redis cache (docs/api.md#cache).

The cache itself (`resources.cache`: `Cache`, and `open_cache`, which the app calls for its
lifetime) lives below the rooms that write, so that ingestion, VEE, review and the lifecycle can keep
it coherent after their commits; this module is the API's side: reads that fall back to PostgreSQL
on a miss or an outage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal

import orjson
import psycopg

from metrify_assets.resources.cache import Cache, encode
from metrify_assets.storage.latest import latest_readings

Source = Literal["cache", "database"]


def latest_reading(
    cache: Cache | None, connect: Callable[[], AbstractContextManager[psycopg.Connection]], meter_id: str
) -> tuple[dict[str, Any] | None, Source]:
    """The meter's newest stored reading as JSON values (None: the meter has none) and where it came
    from: the cache's entry, else PostgreSQL, whose answer then fills the entry unless a writer
    committed meanwhile (so a fill never puts back a reading a newer version replaced)."""
    source: Source = "cache"

    def read() -> dict[str, Any] | None:
        nonlocal source
        source = "database"
        with connect() as conn:  # only on a miss: a hit costs no database connection
            return latest_readings(conn, [meter_id]).get(meter_id)

    if cache is None:
        row = read()
        return (None if row is None else orjson.loads(encode(row))), source
    return cache.latest(meter_id, read), source


def confirmed_latest(
    cache: Cache, conn: psycopg.Connection, meter_id: str, reading: dict[str, Any]
) -> tuple[dict[str, Any] | None, Source]:
    """The meter's cached latest `reading` checked against PostgreSQL's (one primary-key probe), when
    its day may have left the hot tier: the weekly retention deletes hot rows and leaves latest
    entries be. Still stored: the entry stands (`reading` itself, from the cache). Else the entry
    goes (the compare-and-set refuses an older reading, so it is not replaced) and PostgreSQL's
    newest reading, or None, is the answer."""
    stored = latest_readings(conn, [meter_id]).get(meter_id)
    row = None if stored is None else orjson.loads(encode(stored))
    if row is not None and (row["reading_start"], row["record_version"]) == (
        reading["reading_start"],
        reading["record_version"],
    ):
        return reading, "cache"
    cache.invalidate([meter_id])
    return row, "database"


def cached(
    cache: Cache | None,
    key_parts: Sequence[object],
    compute: Callable[[], object],
    *,
    meter_id: str | None = None,
    ttl_s: int | None = None,
) -> Any:
    """`compute()`'s result as JSON values, through the cache when there is one (`Cache.get_or_compute`:
    keyed by `key_parts`, the query's name first, and by the generation of `meter_id`, or the global
    one for a query not about one meter)."""
    if cache is None:
        return orjson.loads(encode(compute()))
    return cache.get_or_compute(key_parts, compute, ttl_s, meter_id=meter_id)
