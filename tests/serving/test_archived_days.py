"""Routes that serve hot rows say which days of their span left PostgreSQL for the lake: a billing
client must never read an archived day's empty page as "no consumption". On the real API over a
simulated home (tests/serving/test_api.py's fixtures), PostgreSQL and Redis; the lifecycle's state
(`ops.lifecycle_days`, `ops.legal_holds`) is written for made-up days of 2031 and removed after."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient

from metrify_assets.env import Settings
from metrify_assets.lifecycle.retention import delete_hot_day
from metrify_assets.lifecycle.tables import TABLES
from metrify_assets.lifecycle.tiers import copy_to_warm
from metrify_assets.resources.build import postgres_resource
from metrify_assets.resources.lake import Lake
from metrify_assets.serving.archive_horizon import ArchiveHorizon
from tests.serving.test_api import client, home, query, settings, token

__all__ = ["client", "home", "settings"]  # the fixtures this module shares with test_api.py
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.e2e]
LATE = "ARC-LATE"  # not registered (UTC days): one late reading on an archived day
HELD = "ARC-HELD"  # not registered: a meter-scoped hold kept its reading of 2031-05-01 hot
NEVER = "ARC-NEVER"  # registered, never sent a reading
# Registered (Europe/London), their readings of 2031-04-20 archived by the lifecycle's hot deletion:
GONE = "ARC-GONE"  # its one reading (cached by /latest before it left)
ROLLED = "ARC-ROLLED"  # none: its reading was deleted (as a rollback does) before the day left
CACHED = "ARC-CACHED"  # not registered: readings of 04-24 (hot) and 04-25 (archived, cached before)
ARCHIVED_DAY, CACHED_DAY = date(2031, 4, 20), date(2031, 4, 25)


def _day_state(dataset: str, day: str, deleted: str, restored: str | None = None) -> tuple[object, ...]:
    return (
        dataset,
        day,
        "cold",
        "STANDARD_IA",
        f"k/{day}",
        f"m/{day}",
        1,
        1,
        "c",
        "s",
        deleted,
        deleted,
        deleted,
        restored,
    )


@pytest.fixture(scope="module")
def archived(settings: Settings) -> Iterator[str]:
    """2031-05-01 and 02 archived for readings (05-03 archived, then restored), 2031-05-01 for grid
    status; a late reading of LATE on 05-02, a reading of HELD on 05-01 a hold kept; NEVER registered
    without a reading. Yields a grid node of the home."""
    node = str(query(settings, "SELECT min(grid_node_id) FROM ops.grid_status")[0][0])
    with postgres_resource(settings).connect() as conn:
        conn.execute("CREATE TEMP TABLE r AS SELECT * FROM ops.meter_readings LIMIT 2")
        conn.execute(
            "UPDATE r SET meter_id = CASE WHEN ctid = (SELECT min(ctid) FROM r) THEN %s ELSE %s END",
            (LATE, HELD),
        )
        conn.execute(
            "UPDATE r SET reading_start = CASE meter_id WHEN %s THEN timestamptz '2031-05-02T10:00Z' "
            "ELSE timestamptz '2031-05-01T10:00Z' END",
            (LATE,),
        )
        conn.execute("INSERT INTO ops.meter_readings SELECT * FROM r")
        conn.execute("CREATE TEMP TABLE m AS SELECT * FROM ops.meters LIMIT 1")
        conn.execute("UPDATE m SET meter_id = %s", (NEVER,))
        conn.execute("INSERT INTO ops.meters SELECT * FROM m")
        conn.cursor().executemany(
            "INSERT INTO ops.lifecycle_days (dataset, day, tier, storage_class, object_key, manifest_key, "
            "row_count, bytes, checksum, sha256, verified_at, moved_at, hot_deleted_at, restored_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                _day_state("meter_readings", "2031-05-01", "2031-06-10T00:00Z"),
                _day_state("meter_readings", "2031-05-02", "2031-06-10T00:00Z"),
                _day_state("meter_readings", "2031-05-03", "2031-06-10T00:00Z", "2031-06-20T00:00Z"),
                _day_state("grid_status", "2031-05-01", "2031-06-10T00:00Z"),
            ],
        )
        conn.execute(
            "INSERT INTO ops.legal_holds (dataset, meter_id, first_day, last_day, reason, author, created_at) "
            "VALUES ('meter_readings', %s, '2031-05-01', '2031-05-01', 'case', 'counsel', '2031-06-01T00:00Z')",
            (HELD,),
        )
        conn.commit()
        try:
            yield node
        finally:
            conn.execute("DELETE FROM ops.meter_readings WHERE meter_id IN (%s, %s)", (LATE, HELD))
            conn.execute("DELETE FROM ops.meters WHERE meter_id = %s", (NEVER,))
            conn.execute("DELETE FROM ops.lifecycle_days WHERE day BETWEEN '2031-05-01' AND '2031-05-03'")
            conn.execute("DELETE FROM ops.legal_holds WHERE meter_id = %s", (HELD,))
            conn.commit()


def test_a_meters_readings_name_the_archived_days_of_their_span(client: TestClient, archived: str) -> None:
    """The trial: a span on archived days answered 200 with an empty page (or one late interval of
    96) and nothing else. Now `archived_days` names them in JSON, `X-Archived-Days` in JSON and CSV
    (a whole download and a page); a restored day and a day outside the span are not named."""
    headers = token("read")
    span = {"from": "2031-05-01T00:00:00Z", "to": "2031-05-04T00:00:00Z"}
    page = client.get(f"/v1/meters/{LATE}/readings", headers=headers, params=span)
    assert page.status_code == 200, page.text
    body = page.json()
    assert [r["reading_start"] for r in body["data"]] == ["2031-05-02T10:00:00+00:00"]  # the late one only
    assert body["archived_days"] == ["2031-05-01", "2031-05-02"]  # 05-03 was restored
    assert page.headers["X-Archived-Days"] == "2031-05-01..2031-05-02"
    for extra in ({"format": "csv"}, {"format": "csv", "limit": "5"}):
        as_csv = client.get(f"/v1/meters/{LATE}/readings", headers=headers, params={**span, **extra})
        assert as_csv.status_code == 200, as_csv.text
        assert as_csv.headers["X-Archived-Days"] == "2031-05-01..2031-05-02"
        assert len(list(csv.reader(io.StringIO(as_csv.text)))) == 2  # header and the late interval
    one_day = {"from": "2031-05-02T00:00:00Z", "to": "2031-05-03T00:00:00Z"}  # `to` is exclusive
    assert client.get(f"/v1/meters/{LATE}/readings", headers=headers, params=one_day).json()[
        "archived_days"
    ] == ["2031-05-02"]
    hot = client.get(
        f"/v1/meters/{LATE}/readings",
        headers=headers,
        params={"from": "2031-05-03T00:00:00Z", "to": "2031-05-04T00:00:00Z"},
    )
    assert hot.json()["archived_days"] == [] and "X-Archived-Days" not in hot.headers
    # A hold on HELD stood when 05-01's hot rows went: HELD's rows of that day are all still hot.
    held = client.get(f"/v1/meters/{HELD}/readings", headers=headers, params=span).json()
    assert held["count"] == 1 and held["archived_days"] == ["2031-05-02"]


def test_the_latest_reading_says_when_newer_days_or_all_readings_were_archived(
    client: TestClient, archived: str
) -> None:
    """A latest reading on an archived day comes with the days from its day on that left (a newer
    reading may be there). A registered meter that never sent a reading is `not_found` on a platform
    with archived days (it was 404 `archived`, "likely archived", because days of readings had left)."""
    headers = token("read")
    never = client.get(f"/v1/meters/{NEVER}/latest", headers=headers)
    assert never.status_code == 404, never.text
    assert never.json()["error"]["code"] == "not_found"
    assert "known but has no reading stored yet" in never.json()["error"]["message"]
    late = client.get(f"/v1/meters/{LATE}/latest", headers=headers)
    assert late.status_code == 200, late.text
    assert late.json()["data"]["reading_start"] == "2031-05-02T10:00:00+00:00"
    assert late.json()["archived_days"] == ["2031-05-02"]
    assert late.headers["X-Archived-Days"] == "2031-05-02"


def _archive(conn: psycopg.Connection, lake: Lake, day: date) -> None:
    """The lifecycle's hot deletion of `day`'s readings (copy written, read back, rows deleted), committed."""
    outcome = delete_hot_day(
        conn, lake, TABLES["meter_readings"], day, [], datetime.now(UTC), "test-archived"
    )
    assert outcome.action == "deleted_hot", outcome
    conn.commit()


@pytest.fixture(scope="module")
def per_meter(
    client: TestClient, settings: Settings, archived: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """GONE's and ROLLED's readings of 2031-04-20 and CACHED's of 04-25 through the lifecycle's real
    hot deletion, into a local lake; ROLLED's deleted before, once the day had its copy. GONE's and
    CACHED's latest readings are in Redis from /latest calls made before; the API's archive horizon
    is reloaded after (it would be within 5 s)."""
    lake = Lake(str(tmp_path_factory.mktemp("archived-lake")))
    readings = [
        (GONE, "2031-04-20T10:00Z"),
        (ROLLED, "2031-04-20T11:00Z"),
        (CACHED, "2031-04-24T10:00Z"),
        (CACHED, "2031-04-25T10:00Z"),
    ]
    with postgres_resource(settings).connect() as conn:
        conn.execute("CREATE TEMP TABLE m2 AS SELECT * FROM ops.meters LIMIT 1")
        conn.execute("UPDATE m2 SET timezone = 'Europe/London'")
        for meter in (GONE, ROLLED):
            conn.execute("UPDATE m2 SET meter_id = %s", (meter,))
            conn.execute("INSERT INTO ops.meters SELECT * FROM m2")
        conn.execute("CREATE TEMP TABLE r2 AS SELECT * FROM ops.meter_readings LIMIT 1")
        for meter, start in readings:
            conn.execute("UPDATE r2 SET meter_id = %s, reading_start = %s", (meter, start))
            conn.execute("INSERT INTO ops.meter_readings SELECT * FROM r2")
        conn.commit()
        for meter in (GONE, CACHED):
            assert client.get(f"/v1/meters/{meter}/latest", headers=token("read")).status_code == 200
        assert (
            copy_to_warm(conn, lake, TABLES["meter_readings"], ARCHIVED_DAY, datetime.now(UTC)).action
            == "copied"
        )
        conn.commit()
        conn.execute("DELETE FROM ops.meter_readings WHERE meter_id = %s", (ROLLED,))
        conn.commit()
        _archive(conn, lake, ARCHIVED_DAY)
        _archive(conn, lake, CACHED_DAY)
        client.app.state.archive_horizon = ArchiveHorizon()
        try:
            yield
        finally:
            conn.execute("DELETE FROM ops.meter_readings WHERE meter_id IN (%s, %s)", (GONE, CACHED))
            conn.execute("DELETE FROM ops.meters WHERE meter_id IN (%s, %s)", (GONE, ROLLED))
            conn.execute("DELETE FROM ops.lifecycle_days WHERE day IN (%s, %s)", (ARCHIVED_DAY, CACHED_DAY))
            conn.commit()


def test_latest_says_archived_only_for_a_meter_whose_readings_left(
    client: TestClient, settings: Settings, per_meter: None
) -> None:
    """The trial: every known meter without a hot reading was 404 `archived` once any day of readings
    had left, though the lake held nothing of it. Now `archived` names the meter's own archived days
    (recorded as the lifecycle deleted them, migration 0027); a meter whose reading was deleted before
    its day left (a rollback) and one that never sent any are `not_found`. A day archived before
    migration 0027 (no per-meter record) may hold any meter's readings: `archived`, `per_meter` false."""
    headers = token("read")
    gone = client.get(f"/v1/meters/{GONE}/latest", headers=headers)  # cached before its day left
    assert gone.status_code == 404, gone.text
    error = gone.json()["error"]
    assert error["code"] == "archived" and "metrify restore" in error["message"]
    assert error["details"] == {
        "archived_day_count": 1,
        "newest_archived_day": "2031-04-20",
        "per_meter": True,
    }
    for meter in (ROLLED, NEVER):
        answer = client.get(f"/v1/meters/{meter}/latest", headers=headers)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", (
            meter,
            answer.text,
        )
    recorded = query(
        settings, "SELECT meter_id FROM ops.archived_meter_days WHERE day = %s ORDER BY 1", (ARCHIVED_DAY,)
    )
    assert recorded == [(GONE,), (ROLLED,)]  # ROLLED's deletion was another transaction: not archived
    with postgres_resource(settings).connect() as conn:
        conn.execute(
            "UPDATE ops.lifecycle_days SET hot_deleted_xact = NULL WHERE dataset = 'meter_readings' AND day = '2031-05-02'"
        )
        conn.commit()
        try:
            legacy = client.get(f"/v1/meters/{NEVER}/latest", headers=headers).json()["error"]
            assert legacy["code"] == "archived" and "may be among them" in legacy["message"]
            assert legacy["details"] == {
                "archived_day_count": 1,
                "newest_archived_day": "2031-05-02",
                "per_meter": False,
            }
        finally:
            for at in ("2031-06-11T00:00Z", "2031-06-10T00:00Z"):  # stamped again, as the fixture wrote it
                conn.execute(
                    "UPDATE ops.lifecycle_days SET hot_deleted_at = %s WHERE dataset = 'meter_readings' "
                    "AND day = '2031-05-02'",
                    (at,),
                )
            conn.commit()


def test_a_cached_latest_reading_whose_day_left_is_not_served(
    client: TestClient, settings: Settings, redis_server: str, per_meter: None
) -> None:
    """The trial: after the retention deleted CACHED's newest reading (04-25), /latest kept serving it
    from Redis until the entry's TTL. Now a cached reading on or before an archived day is checked
    against PostgreSQL: the newest reading left is served (04-24) and the stale entry deleted, so the
    next request fills it with that reading, and the one after is a cache hit of it."""
    headers = token("read")
    first = client.get(f"/v1/meters/{CACHED}/latest", headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["data"]["reading_start"] == "2031-04-24T10:00:00+00:00"
    assert first.headers["X-Metrify-Source"] == "database"
    assert first.json()["archived_days"] == ["2031-04-25", "2031-05-01", "2031-05-02"]
    refill = client.get(f"/v1/meters/{CACHED}/latest", headers=headers)  # the entry went: filled again
    assert refill.headers["X-Metrify-Source"] == "database" and refill.json() == first.json()
    again = client.get(f"/v1/meters/{CACHED}/latest", headers=headers)
    assert again.headers["X-Metrify-Source"] == "cache" and again.json() == first.json()


def test_grid_status_names_its_archived_days_and_marts_do_not(client: TestClient, archived: str) -> None:
    """Grid status (hot rows) names 2031-05-01 in JSON and in a whole CSV download; a mart route
    (`/stability`, which keeps its history) has no `archived_days`; the OpenAPI schema says which."""
    headers = token("read")
    span = {"from": "2031-04-30T00:00:00Z", "to": "2031-05-03T00:00:00Z"}
    status = client.get(f"/v1/grid/nodes/{archived}/status", headers=headers, params=span)
    assert status.status_code == 200, status.text
    assert status.json()["archived_days"] == ["2031-05-01"] and status.json()["count"] == 0
    download = client.get(
        f"/v1/grid/nodes/{archived}/status", headers=headers, params={**span, "format": "csv"}
    )
    assert download.headers["X-Archived-Days"] == "2031-05-01" and download.headers["X-Row-Count"] == "0"
    stability = client.get(f"/v1/grid/nodes/{archived}/stability", headers=headers).json()
    assert "archived_days" not in stability
    paths = client.get("/openapi.json").json()["paths"]

    def page_schema(path: str) -> dict[str, object]:
        ok = paths[path]["get"]["responses"]["200"]
        return ok["content"]["application/json"]["schema"]

    for path in (
        "/v1/meters/{meter_id}/readings",
        "/v1/grid/nodes/{grid_node_id}/status",
        "/v1/weather/stations/{station_id}/observations",
        "/v1/meters/{meter_id}/latest",
    ):
        assert "archived_days" in page_schema(path)["required"], path  # type: ignore[operator]
    assert "archived_days" not in page_schema("/v1/consumption/daily")["properties"]  # type: ignore[operator]


def test_the_horizon_of_a_latest_reading_is_reloaded_after_its_refresh(
    settings: Settings, archived: str
) -> None:
    """`/latest` asks PostgreSQL for archived days only when the newest one (from memory, at most
    `refresh_s` old) is not older than the reading: a day archived meanwhile shows after a reload."""
    postgres = postgres_resource(settings)
    now = [0.0]
    horizon = ArchiveHorizon(refresh_s=5.0, clock=lambda: now[0])
    assert horizon.newest("meter_readings", postgres.connect) == date(2031, 5, 2)  # 05-03 was restored
    with postgres.connect() as conn:
        conn.execute(
            "INSERT INTO ops.lifecycle_days (dataset, day, tier, storage_class, object_key, manifest_key, "
            "row_count, bytes, checksum, sha256, verified_at, moved_at, hot_deleted_at, restored_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            _day_state("meter_readings", "2031-05-09", "2031-06-10T00:00Z"),
        )
        conn.commit()
    try:
        now[0] = 4.0
        assert horizon.newest("meter_readings", postgres.connect) == date(2031, 5, 2)  # not reloaded yet
        now[0] = 5.5
        assert horizon.newest("meter_readings", postgres.connect) == date(2031, 5, 9)
    finally:
        with postgres.connect() as conn:
            conn.execute(
                "DELETE FROM ops.lifecycle_days WHERE dataset = 'meter_readings' AND day = '2031-05-09'"
            )
            conn.commit()
