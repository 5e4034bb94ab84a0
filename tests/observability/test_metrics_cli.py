"""`metrify metrics show` (one scrape on stdout) and the standalone exporter of `metrify metrics serve`,
scraped over HTTP then stopped."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.cli.metrics import serve_until, settings_collector
from metrify_assets.env import resolve_settings
from metrify_assets.observability.metrics import pipeline_registry
from metrify_assets.resources import PostgresResource
from metrify_assets.serving.pool import open_pool

pytestmark = pytest.mark.postgres


def by_label(text: str, sample: str, label: str) -> dict[str, float]:
    """The values of `sample` in a scrape's text, keyed by `label`."""
    return {
        s.labels[label]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample
    }


def received(text: str) -> dict[str, float]:
    return by_label(text, "metrify_records_received_total", "source")


def collect_errors(text: str) -> dict[str, float]:
    return by_label(text, "metrify_metrics_collect_errors_total", "collector")


@pytest.fixture
def env(pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path) -> dict[str, str]:
    pg.execute(
        "INSERT INTO ops.ingest_ledger (batch_id, source, origin, origin_ref, raw_key, records_in, accepted, "
        "flagged, quarantined) VALUES ('b1', 'weather_observations', 'landing', 'f', 'k', 4, 4, 0, 0), "
        "('b2', 'weather_observations', 'landing', 'f', 'k', 6, 5, 0, 1)"
    )
    pg.commit()
    return {
        "METRIFY_HOME": str(tmp_path),
        "METRIFY_POSTGRES_URL": pg_resource.get_url(),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }


def test_help() -> None:
    for command in (["metrics"], ["metrics", "serve"], ["metrics", "show"]):
        result = CliRunner().invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
    serve = CliRunner().invoke(app, ["metrics", "serve", "--help"]).output
    assert "--port" in serve and "9464" in serve and "--host" in serve


def test_show_prints_one_scrape(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["metrics", "show"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert received(result.stdout)["weather_observations"] == 10
    assert "# HELP metrify_records_received_total Records received" in result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_show_exits_1_naming_a_failed_collector_after_printing_the_rest(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka configured but down: `show` exited 0 and only the errors counter told."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    result = CliRunner().invoke(app, ["metrics", "show"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert received(result.stdout)["weather_observations"] == 10
    assert collect_errors(result.stdout)["kafka"] == 1
    error = result.stderr.splitlines()[-1]
    assert error.startswith("error: metrics collectors failed, their metrics are left out above: kafka (")
    assert "postgres" not in error


def test_show_with_postgresql_unreachable_exits_1_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What it can read (the runs, the errors counter) on stdout; the reason as every command says it."""
    port = free_port()
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", f"postgresql://metrify:s3cret@127.0.0.1:{port}/metrify")
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    result = CliRunner().invoke(app, ["metrics", "show"])
    assert result.exit_code == 1, result.output
    assert collect_errors(result.stdout)["postgres"] == 1
    assert received(result.stdout) == {}
    error = result.stderr.splitlines()[-1]
    assert error.startswith("error: metrics collectors failed, their metrics are left out above: postgres (")
    assert "cannot reach the operational PostgreSQL database (connection" in error
    assert f'"127.0.0.1", port {port} failed' in error
    assert "Traceback" not in result.output and "s3cret" not in result.output


def test_serve_answers_scrapes_until_stopped(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop `metrify metrics serve` runs (its SIGTERM handler sets `stop`), on the CLI's pool."""
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    settings = resolve_settings(env)
    port, stop = free_port(), threading.Event()
    with open_pool(env["METRIFY_POSTGRES_URL"], max_size=1) as pool:
        registry = pipeline_registry(settings_collector(settings, lambda: pool.connection(timeout=5)))
        server = threading.Thread(target=serve_until, args=(stop, registry, "127.0.0.1", port))
        server.start()
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, "the exporter did not start"
                    time.sleep(0.05)
            assert response.status_code == 200
            assert received(response.text)["weather_observations"] == 10
            assert received(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text) == {
                "weather_observations": 10
            }
        finally:
            stop.set()
            server.join(timeout=10)
    assert not server.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
