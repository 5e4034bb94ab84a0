"""The CSV COPY behind every upsert: aware timestamps reach PostgreSQL as the same instants."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from metrify_assets.resources import PostgresResource
from metrify_assets.storage.writes import _copy_frame

pytestmark = pytest.mark.postgres

INSTANTS = [
    "2026-03-29T00:59:59.999999Z",  # the last microsecond before Europe's spring change
    "2026-03-29T01:00:00Z",
    "2026-10-25T00:30:00Z",  # inside the hour autumn repeats
    "1999-12-31T23:59:59.000001Z",
    None,
]


@pytest.fixture
def conn(pg_resource: PostgresResource) -> Iterator[psycopg.Connection]:
    """A connection whose session is in Europe/Amsterdam, not the server's UTC."""
    with psycopg.connect(pg_resource.get_url()) as c:
        c.execute("SET TimeZone = 'Europe/Amsterdam'")
        c.execute("CREATE TEMP TABLE copied (i int, at timestamptz, at_ns timestamptz, label text)")
        yield c
        c.rollback()


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/St_Johns"])
def test_aware_timestamps_arrive_as_the_same_instants(conn: psycopg.Connection, zone: str) -> None:
    at = pd.Series(pd.to_datetime(INSTANTS, utc=True, format="ISO8601")).dt.tz_convert(zone)
    frame = pd.DataFrame(
        {
            "i": range(len(INSTANTS)),
            "at": at.astype(f"datetime64[us, {zone}]"),
            "at_ns": at.astype(f"datetime64[ns, {zone}]"),
            "label": ["a", "", None, "b,c", '"q"'],
        }
    )
    with conn.cursor() as cur:
        _copy_frame(cur, sql.Identifier("copied"), frame)
        rows = cur.execute(
            "SELECT i, extract(epoch FROM at)::numeric, extract(epoch FROM at_ns)::numeric, label "
            "FROM copied ORDER BY i"
        ).fetchall()
    expected = [None if t is None else pd.Timestamp(t).value // 1000 for t in INSTANTS]
    assert [r[1] if r[1] is None else int(r[1] * 1_000_000) for r in rows] == expected
    assert [r[2] if r[2] is None else int(r[2] * 1_000_000) for r in rows] == expected
    assert [r[3] for r in rows] == ["a", "", None, "b,c", '"q"']
