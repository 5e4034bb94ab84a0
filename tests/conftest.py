"""Shared fixtures: real services, started by the tests themselves.

In CI (`CI=true`) a service that cannot start fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
import redis

from metrify_assets.contracts import CONTRACTS
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.storage.embedded_server import stop_embedded
from metrify_assets.storage.migrate import migrate, truncate_ops
from metrify_platform.kafka_broker import KafkaBroker
from metrify_platform.redis_server import RedisServer

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def import_anyio_now() -> None:
    """Import every module anyio would import lazily, here in the main thread. anyio is a pytest
    plugin, so pytest rewrites its modules on import, parsing their source; a first import inside the
    event-loop thread of FastAPI's TestClient (`anyio.open_file` for a static file) then parsed in a
    thread, which CPython 3.11.7 can fail with "SystemError: AST constructor recursion depth mismatch"
    (gh-106905): tests/serving/test_docs.py failed so in 2 of 4 CI runs."""
    import anyio
    import anyio._backends._asyncio  # the backend a TestClient's loop imports

    for name in dir(anyio):
        if not name.startswith("_"):
            getattr(anyio, name)


import_anyio_now()


# The files that take minutes, slowest first (seconds of their slowest tests in the CI run of 2026-12-07,
# setup included; the session's "slowest test files" section gives the figures to refresh this from).
# `make test` hands files to its workers in collection order (`--no-loadscope-reorder`): xdist's
# default order, by number of tests, started the daemon test's file (1 test, 2 minutes) 151st of 168
# and a few minutes-long files last, so the run ended on them while the other workers idled.
SLOW_FILES = (
    "tests/e2e/test_single_source.py",  # 204 s
    "tests/warehouse/test_rebuild.py",  # 201
    "tests/warehouse/test_snowflake.py",  # 134
    "tests/faults/test_daemon.py",  # 120
    "tests/warehouse/test_marts_keep_days_left_hot_tier.py",  # 111
    "tests/warehouse/test_weather_marts.py",  # 106
    "tests/warehouse/test_assets.py",  # 98
    "tests/e2e/test_demo.py",  # 97
    "tests/serving/test_api.py",  # 76: builds the home test_csv_download.py and test_archived_days.py
    # copy (tests/serving/test_api.py's `home`), so they come later, once it is built (seconds each)
    "tests/warehouse/test_marts_survive_cleanup.py",  # 58
    "tests/ingestion/kafka/test_ingest.py",  # 53
    "tests/e2e/test_ui.py",  # 51
    "tests/forecasting/test_marts.py",  # 36
    "tests/simulation/test_registry_versions.py",  # 32
    "tests/warehouse/test_dbt_on_vee.py",  # 30
)


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow files first, then the others by number of tests (as xdist would order them), each
    file's tests kept together and in their order."""
    rank = {path: i for i, path in enumerate(SLOW_FILES)}
    tests = Counter(_file_of(item.nodeid) for item in items)
    items.sort(key=lambda item: (rank.get(f := _file_of(item.nodeid), len(rank)), -tests[f], f))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The slowest test files (setup, call and teardown summed), to keep SLOW_FILES current."""
    seconds: Counter[str] = Counter()
    for reports in terminalreporter.stats.values():
        for report in reports:
            if isinstance(report, pytest.TestReport):
                seconds[_file_of(report.nodeid)] += report.duration
    if len(seconds) < 2:
        return
    terminalreporter.section("slowest test files")
    for path, total in seconds.most_common(20):
        terminalreporter.write_line(f"{total:8.1f} s  {path}")


def service_unavailable(name: str, err: BaseException) -> None:
    """Fail in CI, skip elsewhere: a service test must never pass silently without its service."""
    msg = f"{name} could not start: {type(err).__name__}: {err}"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session", autouse=True)
def stop_leftover_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Backstop: at session end, stop every embedded PostgreSQL under this session's temporary
    directories (a CLI command in a temporary METRIFY_HOME starts one in HOME/pg, and pgserver leaves
    it running), so no test leaves a server behind, whatever the fixture that owns it does."""
    yield
    for pid_file in list(tmp_path_factory.getbasetemp().rglob("postmaster.pid")):
        stop_embedded(pid_file.parent)


@pytest.fixture(scope="session")
def pg_resource(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresResource]:
    """An embedded PostgreSQL (pgserver) for the whole session, with the `ops` schema applied; stopped
    at the end of the session."""
    data_dir = tmp_path_factory.mktemp("pg")
    resource = PostgresResource(data_dir=str(data_dir))
    try:
        with resource.connect() as conn:
            migrate(conn)
    except Exception as err:  # noqa: BLE001 - any start failure is reported the same way
        service_unavailable("postgres (pgserver)", err)
    yield resource
    stop_embedded(data_dir)


@pytest.fixture
def pg(pg_resource: PostgresResource) -> Iterator[psycopg.Connection]:
    """A connection to a clean `ops` schema (tables truncated before the test)."""
    with pg_resource.connect() as conn:
        truncate_ops(conn)
        yield conn


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real HTTP S3 endpoint on loopback (moto server) with test credentials and a `metrify-lake` bucket."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
        server.start()
    except Exception as err:  # noqa: BLE001 - any start failure is reported the same way
        service_unavailable("s3 (moto server)", err)
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as mp:
        endpoint = f"http://{host}:{port}"
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        boto3.client("s3").create_bucket(Bucket="metrify-lake")
        yield endpoint
    server.stop()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """A real single-node Apache Kafka (KRaft) for the whole session, as `metrify kafka broker` runs it."""
    broker = KafkaBroker()
    try:
        broker.start()
    except Exception as err:  # noqa: BLE001 - any start failure is reported the same way
        service_unavailable("kafka", err)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A real Redis (Debian's `redis-server`, no persistence) on a free loopback port for the whole
    session: its URL."""
    server = RedisServer()
    try:
        server.start()
    except Exception as err:  # noqa: BLE001 - any start failure is reported the same way
        server.close()
        service_unavailable("redis (redis-server)", err)
    yield server.url
    server.close()


@pytest.fixture
def redis_db(redis_server: str) -> str:
    """The session's Redis, emptied before the test (FLUSHALL): its URL."""
    with redis.Redis.from_url(redis_server) as client:
        client.flushall()
    return redis_server


@pytest.fixture
def redis_server_factory(redis_server: str) -> Iterator[Callable[[], RedisServer]]:
    """Starts Redis servers of the test's own (to stop and start again: an outage), each on its own
    port; all closed after the test. Needs the session's server, so a missing binary skips or fails
    the same way."""
    servers: list[RedisServer] = []

    def start() -> RedisServer:
        server = RedisServer()
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def kafka_resource(kafka_broker: KafkaBroker, request: pytest.FixtureRequest) -> KafkaResource:
    """A resource on the session broker with topics of this test's own (no state shared between tests)."""
    prefix = f"t{zlib.crc32(request.node.nodeid.encode())}"
    return KafkaResource(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        group_id=f"{prefix}-ingest",
        topics={s: f"{prefix}.{c.topic}" for s, c in CONTRACTS.items()},
        timeout_ms=5000,
    )


@pytest.fixture
def fixtures_dir() -> Path:
    return Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def snowflake_server() -> Iterator[dict[str, Any]]:
    """fakesnow's server mode on a free loopback port (a thread), reached over HTTP like Snowflake.

    Yields the Snowflake connector's connection arguments (host, port, protocol, account, user).
    """
    try:
        import fakesnow

        server = fakesnow.server(host="127.0.0.1")
        kwargs = server.__enter__()
    except Exception as err:  # noqa: BLE001 - any start failure is reported the same way
        service_unavailable("snowflake (fakesnow server)", err)
    try:
        yield kwargs
    finally:
        server.__exit__(None, None, None)


@pytest.fixture
def kafka_defs(
    tmp_path: Path,
    kafka_resource: KafkaResource,
    pg_resource: PostgresResource,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dg.Definitions]:
    """The code location as deployed, pointed at the test broker, database and a temporary home."""
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_resource.bootstrap_servers)
    monkeypatch.setenv("METRIFY_KAFKA_GROUP_ID", kafka_resource.group_id)
    from metrify_assets.definitions import defs as load_defs  # the code location, for the tests that run it

    yield load_defs()
