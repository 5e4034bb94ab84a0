"""The Redis cache against a real redis-server and PostgreSQL: the latest reading is only ever replaced
by a newer one, generations retire cached results once a writer commits, the ingest path (the code
location's run and a replayed old batch) leaves the entry equal to what is stored, the writers that
put older data back invalidate, and an outage (the server stopped, then started again) only ever
costs misses."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import psycopg
import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from metrify_assets.contracts import METER_READINGS
from metrify_assets.definitions import defs as load_defs
from metrify_assets.env import resolve_settings
from metrify_assets.ingestion.assets import landing_spec
from metrify_assets.ingestion.batch import BatchSpec, process_batch, refresh_cache
from metrify_assets.ingestion.landing import land_lines
from metrify_assets.lifecycle.rollback import rebuild_from_raw
from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.store import run_days
from metrify_assets.orchestration.instance import execute_job
from metrify_assets.quality import review
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.build import build_resources
from metrify_assets.resources.cache import Cache, open_cache, order_key
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.latest import latest_readings
from metrify_platform.redis_server import RedisServer, free_port

pytestmark = pytest.mark.redis
M = "M1"
T0 = datetime(2026, 3, 29, tzinfo=UTC)
QUARTER = timedelta(minutes=15)
DAY = date(2026, 3, 29)
NOW = pd.Timestamp("2026-04-01T00:00:00Z")


def row(start: datetime, version: int, kwh: float = 0.5) -> dict[str, Any]:
    return {"meter_id": M, "reading_start": start, "record_version": version, "energy_kwh": kwh}


def refresh(cache: Cache, stored: dict[str, Any]) -> None:
    """A writer's refresh after its commit, PostgreSQL holding `stored` as the meter's newest row."""
    cache.refresh_latest([M], lambda ids: {M: stored})


def entry(cache: Cache, meter: str = M) -> dict[str, Any] | None:
    """The cached latest entry alone (a miss reads nothing and fills nothing)."""
    return cache.latest(meter, lambda: None)


def reading(meter: str, start: str, kwh: float, **extra: object) -> str:
    return json.dumps(
        {"meter_id": meter, "reading_start": start, "interval_minutes": 15, "energy_kwh": kwh, **extra}
    )


def ingest(
    conn: psycopg.Connection, lake: Lake, cache: Cache, batch_id: str, lines: list[str], version: int
) -> None:
    """As the ingest asset does: process, commit, then refresh the cache."""
    spec = BatchSpec(METER_READINGS, batch_id, "landing", f"{batch_id}.jsonl", DAY)
    result = process_batch(spec, lines, [version] * len(lines), lake, conn, NOW, alert_threshold=0)
    conn.commit()
    refresh_cache(cache, conn, result)


def stored_latest(conn: psycopg.Connection, meter: str = M) -> dict[str, Any] | None:
    return latest_readings(conn, [meter]).get(meter)


@pytest.fixture
def cache(redis_db: str) -> Iterator[Cache]:
    cache = Cache(redis_db, ttl_s=60)
    yield cache
    cache.close()


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@given(
    st.datetimes(min_value=datetime(1800, 1, 1), max_value=datetime(2400, 1, 1), timezones=st.just(UTC)),
    st.integers(-(2**63), 2**63 - 1),
    st.datetimes(min_value=datetime(1800, 1, 1), max_value=datetime(2400, 1, 1), timezones=st.just(UTC)),
    st.integers(-(2**63), 2**63 - 1),
)
def test_order_keys_sort_as_reading_start_then_version(
    a_start: datetime, a_version: int, b_start: datetime, b_version: int
) -> None:
    a, b = order_key(a_start, a_version), order_key(b_start, b_version)
    assert len(a) == len(b) == 40
    assert (a < b) == ((a_start, a_version) < (b_start, b_version))
    assert (a == b) == ((a_start, a_version) == (b_start, b_version))


def test_a_latest_entry_is_only_replaced_by_a_newer_reading(cache: Cache) -> None:
    refresh(cache, row(T0 + QUARTER, 10))
    assert entry(cache) == {
        "meter_id": M, "reading_start": "2026-03-29T00:15:00+00:00", "record_version": 10, "energy_kwh": 0.5,
    }  # fmt: skip
    refresh(cache, row(T0, 99))  # an earlier reading, whatever its version
    refresh(cache, row(T0 + QUARTER, 9, kwh=0.1))  # the same reading at an older version
    assert (entry(cache) or {})["record_version"] == 10
    refresh(cache, row(T0 + QUARTER, 11, kwh=0.7))  # the same reading at a newer version
    assert (entry(cache) or {})["energy_kwh"] == 0.7
    refresh(cache, row(T0 + 2 * QUARTER, 1))  # a later reading, even at a lower version
    assert (entry(cache) or {})["reading_start"] == "2026-03-29T00:30:00+00:00"


def test_a_refresh_that_began_before_an_invalidation_is_refused(cache: Cache) -> None:
    refresh(cache, row(T0 + QUARTER, 2))

    def read_while_a_rollback_commits(meters: list[str]) -> dict[str, dict[str, Any]]:
        cache.invalidate(meters)  # a rollback put version 1 back and invalidated after this read began
        return {M: row(T0 + QUARTER, 2)}

    cache.refresh_latest([M], read_while_a_rollback_commits)
    assert entry(cache) is None
    refresh(cache, row(T0 + QUARTER, 1))  # the next writer reads the rolled-back state: taken
    assert (entry(cache) or {})["record_version"] == 1


def test_a_fill_is_dropped_when_a_writer_committed_while_it_read(cache: Cache) -> None:
    def read_racing_a_writer() -> dict[str, Any]:
        cache.bump([M])  # a writer committed (and bumped) after the reader took the generation
        return row(T0, 1)

    assert (cache.latest(M, read_racing_a_writer) or {})["record_version"] == 1  # PostgreSQL's answer
    assert entry(cache) is None
    assert (cache.latest(M, lambda: row(T0, 2)) or {})["record_version"] == 2
    assert (entry(cache) or {})["record_version"] == 2  # a quiet read fills the entry
    assert cache.latest("M-none", lambda: None) is None


def test_a_generation_bump_retires_cached_query_results(cache: Cache, redis_db: str) -> None:
    calls: list[str] = []

    def compute(name: str) -> Any:
        def run() -> dict[str, Any]:
            calls.append(name)
            # A mart's `_utc` time comes without an offset (from psycopg, or pandas): it is UTC.
            return {"name": name, "n": len(calls), "at": T0, "hour_utc": pd.Timestamp("2026-03-29 10:00")}

        return run

    first = cache.get_or_compute(["daily", M, "2026-03-29"], compute("m1"), meter_id=M)
    assert first == {  # JSON, hit or miss
        "name": "m1", "n": 1, "at": "2026-03-29T00:00:00+00:00", "hour_utc": "2026-03-29T10:00:00+00:00"
    }  # fmt: skip
    assert cache.get_or_compute(["daily", M, "2026-03-29"], compute("m1"), meter_id=M) == first
    cache.get_or_compute(["daily", "M2", "2026-03-29"], compute("m2"), meter_id="M2")
    cache.get_or_compute(["quality", "2026-03-29"], compute("all"), ttl_s=5)
    assert calls == ["m1", "m2", "all"]

    cache.bump([M])  # a writer committed a change to M1
    cache.get_or_compute(["daily", M, "2026-03-29"], compute("m1"), meter_id=M)
    cache.get_or_compute(["daily", "M2", "2026-03-29"], compute("m2"), meter_id="M2")
    cache.get_or_compute(["quality", "2026-03-29"], compute("all"), ttl_s=5)
    assert calls == ["m1", "m2", "all", "m1", "all"]  # M2's result stands; the global one moved on

    def slow_query() -> str:
        cache.bump([M])  # a commit lands while the query runs
        return "read before the commit"

    assert cache.get_or_compute(["slow"], slow_query, meter_id=M) == "read before the commit"
    assert cache.get_or_compute(["slow"], lambda: "read after", meter_id=M) == "read after"

    with redis.Redis.from_url(redis_db) as client:
        ttls = {k.decode().split(":")[2]: client.pttl(k) for k in client.scan_iter("metrify:q:*")}
    assert 0 < ttls["quality"] <= 5_000 and 5_000 < ttls["daily"] <= 60_000


@pytest.mark.postgres
def test_a_replayed_old_batch_leaves_the_newest_reading_cached(
    pg: psycopg.Connection, lake: Lake, cache: Cache, redis_db: str
) -> None:
    old = [reading(M, "2026-03-29T00:00:00Z", 0.5), reading(M, "2026-03-29T00:15:00Z", 0.6)]
    new = [reading(M, "2026-03-29T00:15:00Z", 0.9), reading(M, "2026-03-29T00:30:00Z", 0.4)]
    ingest(pg, lake, cache, "old", old, 10)
    assert (entry(cache) or {})["reading_start"] == "2026-03-29T00:15:00+00:00"
    ingest(pg, lake, cache, "new", new, 20)
    newest = entry(cache)
    assert newest is not None
    assert (newest["reading_start"], newest["record_version"], newest["energy_kwh"]) == (
        "2026-03-29T00:30:00+00:00", 20, 0.4,
    )  # fmt: skip

    ingest(pg, lake, cache, "old", old, 10)  # a replay of the old batch: the entry stands
    assert entry(cache) == newest
    with redis.Redis.from_url(redis_db) as client:  # the entry expired, then the old batch again:
        client.delete(*client.scan_iter("metrify:latest:*"))  # what is stored wins, not the batch
    ingest(pg, lake, cache, "old", old, 10)
    assert entry(cache) == newest
    assert cache.latest(M, lambda: pytest.fail("a hit reads nothing")) == newest


@pytest.mark.postgres
def test_an_ingest_run_of_the_code_location_refreshes_the_entry_after_its_commit(
    tmp_path: Path,
    pg_resource: PostgresResource,
    pg: psycopg.Connection,
    redis_db: str,
    cache: Cache,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    monkeypatch.setenv("REDIS_URL", redis_db)
    defs = load_defs()
    count = ["readings", M]

    def readings() -> int:
        found = pg.execute("SELECT count(*) FROM ops.meter_readings WHERE meter_id = %s", (M,)).fetchone()
        pg.commit()
        return int(found[0]) if found else 0

    assert cache.get_or_compute(count, readings, meter_id=M) == 0
    landed = land_lines(
        tmp_path / "landing",
        METER_READINGS.source,
        [reading(M, "2026-03-29T00:00:00Z", 0.5), reading(M, "2026-03-29T00:15:00Z", 0.7)],
    )
    execute_job(
        defs, "ingest_meter_readings_job", dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"ingest_meter_readings": {"config": {"landing_file": str(landed.path)}}}},
    )  # fmt: skip

    committed = stored_latest(pg)  # read on another connection: the run's commit came first
    assert committed is not None and committed["record_version"] == landed.seq
    assert entry(cache) == json.loads(json.dumps(committed, default=datetime.isoformat))
    assert cache.get_or_compute(count, readings, meter_id=M) == 2  # the run moved M1's generation


@pytest.mark.postgres
def test_a_rejected_newest_reading_leaves_the_cache(pg: psycopg.Connection, lake: Lake, cache: Cache) -> None:
    flagged = [
        reading(M, "2026-03-29T00:00:00Z", 0.5, voltage_v=231.0),
        reading(M, "2026-03-29T00:15:00Z", 0.6, voltage_v=262.0),  # flagged: voltage_out_of_range
    ]
    ingest(pg, lake, cache, "b1", flagged, 10)
    assert (entry(cache) or {})["reading_start"] == "2026-03-29T00:15:00+00:00"
    review.reject(pg, "b1", 1, by="ana", why="meter swap", cache=cache)
    assert entry(cache) is None
    latest = cache.latest(M, lambda: stored_latest(pg))
    assert (latest or {})["reading_start"] == "2026-03-29T00:00:00+00:00"


@pytest.mark.postgres
def test_a_rollback_to_an_older_version_leaves_the_cache(
    pg: psycopg.Connection, lake: Lake, cache: Cache, tmp_path: Path
) -> None:
    """The compare-and-set would refuse the older version: the rollback invalidates instead."""

    def land_and_ingest(kwh: float, seq: int) -> str:
        lines = [reading(M, "2026-03-29T06:00:00Z", kwh)]
        landed = land_lines(tmp_path / "landing", METER_READINGS.source, lines, seq=seq)
        spec = landing_spec(METER_READINGS, landed)
        result = process_batch(spec, lines, [landed.seq], lake, pg, NOW, alert_threshold=0)
        pg.commit()
        refresh_cache(cache, pg, result)
        return spec.batch_id

    seq = int(NOW.value // 1000)
    first = land_and_ingest(1.0, seq)
    land_and_ingest(2.0, seq + 1)
    assert (entry(cache) or {})["energy_kwh"] == 2.0
    found = pg.execute("SELECT processed_at FROM ops.ingest_ledger WHERE batch_id = %s", (first,)).fetchone()
    assert found is not None
    rebuild_from_raw(pg, lake, METER_READINGS.source, DAY, DAY, as_of=found[0], cache=cache)
    assert (stored_latest(pg) or {})["energy_kwh"] == 1.0
    assert entry(cache) is None
    assert (cache.latest(M, lambda: stored_latest(pg)) or {})["energy_kwh"] == 1.0


@pytest.mark.postgres
def test_a_vee_run_retires_the_meters_cached_results(
    pg: psycopg.Connection, lake: Lake, cache: Cache
) -> None:
    ingest(pg, lake, cache, "b1", [reading(M, f"2026-03-29T{h:02d}:00:00Z", 0.5) for h in range(24)], 10)

    def series() -> int:
        found = pg.execute("SELECT count(*) FROM ops.vee_readings WHERE meter_id = %s", (M,)).fetchone()
        return int(found[0]) if found else 0

    assert cache.get_or_compute(["vee", M, "2026-03-29"], series, meter_id=M) == 0
    run_days(pg, DAY, DAY, VeeConfig(), now=NOW, cache=cache)
    assert cache.get_or_compute(["vee", M, "2026-03-29"], series, meter_id=M) == 96


def test_redis_stopped_mid_test_degrades_to_misses_and_recovers(
    redis_server_factory: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="metrify_assets.resources.cache")
    own_server = redis_server_factory()  # the session's server stays up for the other tests
    cache = Cache(own_server.url, retry_after_s=0.0)
    refresh(cache, row(T0, 1))
    assert cache.available() and (entry(cache) or {})["record_version"] == 1

    own_server.stop()
    assert not cache.available()
    assert (cache.latest(M, lambda: row(T0, 2)) or {})["record_version"] == 2  # PostgreSQL's answer
    assert cache.get_or_compute(["q"], lambda: {"at": T0}) == {"at": "2026-03-29T00:00:00+00:00"}
    cache.refresh_latest([M], lambda ids: pytest.fail("no generations taken: nothing to read"))
    cache.bump([M])
    cache.invalidate([M])
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].levelno == logging.WARNING  # once per outage

    own_server.start()
    assert cache.available()
    assert [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()]
    assert entry(cache) is None  # a restarted Redis keeps nothing
    assert (cache.latest(M, lambda: row(T0, 3)) or {})["record_version"] == 3
    assert (entry(cache) or {})["record_version"] == 3
    assert cache.get_or_compute(["q"], lambda: 1) == 1
    assert cache.get_or_compute(["q"], lambda: 2) == 1

    def across_a_restart() -> str:
        own_server.stop()  # a writer's bump would be lost with the server's memory
        own_server.start()
        return "read before the restart"

    assert cache.get_or_compute(["r"], across_a_restart, meter_id=M) == "read before the restart"
    assert cache.get_or_compute(["r"], lambda: "read after", meter_id=M) == "read after"
    cache.close()


@pytest.mark.postgres
def test_an_ingest_with_redis_unreachable_commits_all_the_same(
    pg: psycopg.Connection, lake: Lake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="metrify_assets.resources.cache")
    unreachable = Cache(f"redis://127.0.0.1:{free_port()}/0")
    assert not unreachable.available()
    ingest(pg, lake, unreachable, "b1", [reading(M, "2026-03-29T00:00:00Z", 0.5)], 10)
    assert (stored_latest(pg) or {})["energy_kwh"] == 0.5
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 1


def test_the_cache_is_opened_from_redis_url(redis_db: str) -> None:
    assert open_cache(resolve_settings({})) is None
    assert build_resources(resolve_settings({}))["redis"].get_cache() is None
    settings = resolve_settings({"REDIS_URL": redis_db, "METRIFY_API_CACHE_TTL_S": "42"})
    cache = open_cache(settings)
    assert cache is not None and cache.ttl_s == 42 and cache.available()
    cache.close()
    deployed = build_resources(settings)["redis"]
    assert isinstance(deployed.url, dg.EnvVar) and deployed.url.env_var_name == "REDIS_URL"
