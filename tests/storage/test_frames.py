"""read_frame: the CSV path gives the frame the binary path gives, and hands over what it cannot carry."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import psycopg
import pytest

from metrify_assets.resources import PostgresResource
from metrify_assets.storage import frames
from metrify_assets.storage.frames import read_frame

pytestmark = pytest.mark.postgres
SCHEMA = "frames_test"

ROWS = """
INSERT INTO frames_test.t VALUES
  ('MTR-1', '2026-03-29 00:45:00+00', 15, 0.1, 1.5::real, NULL, true, '2026-03-29', '2026-03-29 01:00', 'a,b', NULL),
  ('', '2026-03-29 01:00:00.000001+00', NULL, 'Infinity', NULL, '', false, NULL, NULL, 'line one
line two, "quoted"', NULL),
  ('MTR-3', '1999-12-31 23:59:59.999999+00', -7, 'NaN', 'NaN', 'x', NULL, '1999-12-31', NULL, NULL, NULL),
  ('MTR-4', '2026-10-25 01:30:00+00', 9223372036854775807, 1e-300, 3.4e38, 'ünïcode ✓', true, NULL, NULL, ' ', NULL)
"""


@pytest.fixture
def conn(pg_resource: PostgresResource) -> Iterator[psycopg.Connection]:
    """A connection in Europe/Amsterdam (not the server's UTC) to a schema with one awkward table."""
    with psycopg.connect(pg_resource.get_url(), autocommit=True) as c:
        c.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        c.execute(f"CREATE SCHEMA {SCHEMA}")
        c.execute(
            f"CREATE TABLE {SCHEMA}.t (id text, at timestamptz, n bigint, x double precision, r real, "
            "s text, b boolean, d date, local timestamp, flags text, nothing text)"
        )
        c.execute(ROWS)
        c.execute("SET TimeZone = 'Europe/Amsterdam'")
        c.autocommit = False
        yield c
        c.rollback()
        c.autocommit = True
        c.execute(f"DROP SCHEMA {SCHEMA} CASCADE")


QUERY = f"SELECT * FROM {SCHEMA}.t WHERE id <> %(skip)s ORDER BY at"


@pytest.fixture
def binary_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The queries read through binary results (the CSV path's fallback)."""
    reads: list[str] = []
    read_binary = frames._read_binary

    def counted(conn: psycopg.Connection, query: str, params: frames.Params) -> pd.DataFrame:
        reads.append(query)
        return read_binary(conn, query, params)

    monkeypatch.setattr(frames, "_read_binary", counted)
    return reads


def test_the_csv_path_gives_the_binary_paths_frame(conn: psycopg.Connection, binary_reads: list[str]) -> None:
    fast = read_frame(conn, QUERY, {"skip": "none"})
    assert binary_reads == []  # read as CSV
    slow = frames._read_binary(conn, QUERY, {"skip": "none"})

    pd.testing.assert_frame_equal(fast, slow)
    assert str(fast["at"].dt.tz) == "Europe/Amsterdam"
    assert fast["id"].tolist() == ["MTR-3", "MTR-1", "", "MTR-4"]  # empty text is not NULL
    assert fast["s"].isna().tolist() == [False, True, False, False]
    assert fast["flags"].iloc[2] == 'line one\nline two, "quoted"'
    assert fast["x"].iloc[1] == 0.1 and fast["x"].iloc[2] == float("inf") and fast["x"].iloc[3] == 1e-300
    assert fast["r"].iloc[3] == float(pd.Series([3.4e38], dtype="float32").iloc[0])  # real, widened
    assert fast["b"].tolist() == [None, True, False, True]
    assert fast["nothing"].tolist() == [None] * 4


def test_a_single_column_keeps_its_null_rows(conn: psycopg.Connection, binary_reads: list[str]) -> None:
    """A one-column row holding NULL is an empty CSV line: still a row."""
    one = read_frame(conn, f"SELECT s FROM {SCHEMA}.t ORDER BY at")
    assert binary_reads == []
    assert one["s"].isna().tolist() == [False, True, False, False] and len(one) == 4
    nulls = read_frame(conn, f"SELECT nothing FROM {SCHEMA}.t")
    assert nulls["nothing"].tolist() == [None] * 4


@pytest.mark.parametrize("end", ["", ";", "  ;\n", " -- the end"])
def test_parameters_and_how_a_query_ends(conn: psycopg.Connection, binary_reads: list[str], end: str) -> None:
    query = f"SELECT id, x FROM {SCHEMA}.t WHERE x > %(low)s AND id = ANY(%(ids)s) ORDER BY id" + end
    params = {"low": 1e-301, "ids": ["MTR-1", "MTR-4", "nobody"]}
    frame = read_frame(conn, query, params)
    assert binary_reads == []
    assert frame["id"].tolist() == ["MTR-1", "MTR-4"]
    pd.testing.assert_frame_equal(frame, frames._read_binary(conn, query, params))


def test_empty_results_and_two_columns_named_alike(conn: psycopg.Connection) -> None:
    empty = read_frame(conn, f"SELECT id, at FROM {SCHEMA}.t WHERE false")
    assert list(empty.columns) == ["id", "at"] and empty.empty

    twice = read_frame(conn, f"SELECT id, n AS v, x AS v FROM {SCHEMA}.t WHERE id = 'MTR-1'")
    assert list(twice.columns) == ["id", "v", "v"]
    assert twice.iloc[0, 1] == 15 and twice.iloc[0, 2] == 0.1


def test_rows_locked_for_update_are_read_in_the_callers_transaction(
    conn: psycopg.Connection, pg_resource: PostgresResource, binary_reads: list[str]
) -> None:
    conn.execute(f"UPDATE {SCHEMA}.t SET n = 1 WHERE id = 'MTR-1'")  # not committed
    locked = read_frame(
        conn, f"SELECT id, n FROM {SCHEMA}.t WHERE id IN (%s, %s) FOR UPDATE", ["MTR-1", "MTR-3"]
    )
    assert binary_reads == []
    assert locked.set_index("id")["n"].to_dict() == {"MTR-1": 1, "MTR-3": -7}
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    with (
        psycopg.connect(pg_resource.get_url(), autocommit=True) as other,  # MTR-3 is locked too
        pytest.raises(psycopg.errors.LockNotAvailable),
    ):
        other.execute(f"SELECT 1 FROM {SCHEMA}.t WHERE id = 'MTR-3' FOR UPDATE NOWAIT")


def test_values_csv_cannot_carry_and_other_types_take_the_binary_path(
    conn: psycopg.Connection, binary_reads: list[str]
) -> None:
    arrays = read_frame(conn, "SELECT ARRAY['a', 'b'] AS flags, 1.5::numeric AS amount")
    assert arrays["flags"].tolist() == [["a", "b"]]
    assert len(binary_reads) == 1

    far = read_frame(conn, "SELECT '20000-01-01 00:00:00+00'::timestamptz AS far, 1 AS one")
    assert len(binary_reads) == 2 and far["one"].tolist() == [1]


def test_an_autocommit_connection_keeps_no_transaction_and_its_settings(conn: psycopg.Connection) -> None:
    conn.rollback()
    conn.autocommit = True
    conn.execute("SET extra_float_digits = 0")  # rounded text floats, as some servers are set
    frame = read_frame(conn, "SELECT 1.0::float8 / 3 AS third")

    assert frame["third"].tolist() == [1.0 / 3]
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert conn.execute("SHOW extra_float_digits").fetchone() == ("0",)


def test_floats_are_exact_whatever_the_sessions_float_digits(conn: psycopg.Connection) -> None:
    conn.execute("SET LOCAL extra_float_digits = -3")
    third = read_frame(conn, "SELECT 1.0::float8 / 3 AS third")
    assert third["third"].tolist() == [1.0 / 3]


def test_many_rows_arrive_whole_and_in_order(conn: psycopg.Connection, binary_reads: list[str]) -> None:
    """Rows taken straight from libpq's buffer while it has them, and waited for when it has none."""
    query = "SELECT g AS n, md5(g::text) AS h FROM generate_series(1, 200000) AS g ORDER BY g"
    frame = read_frame(conn, query)
    assert binary_reads == []
    assert frame["n"].tolist() == list(range(1, 200001))
    assert frame["h"].iloc[-1] == conn.execute("SELECT md5('200000')").fetchone()[0]  # type: ignore[index]
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS


def test_an_error_after_the_first_rows_is_raised_and_the_connection_recovers(
    conn: psycopg.Connection,
) -> None:
    """The server fails the query once it has sent rows: the COPY's result is an error, raised as
    psycopg raises it, and the connection is usable after a rollback."""
    with pytest.raises(psycopg.errors.DivisionByZero):
        read_frame(conn, "SELECT 1 / (150000 - g) AS n FROM generate_series(1, 200000) AS g")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    conn.rollback()
    assert read_frame(conn, "SELECT 1 AS one")["one"].tolist() == [1]
