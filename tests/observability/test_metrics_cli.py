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
from metrify_assets.cli.metrics import serve_until, settings_registry
from metrify_assets.env import resolve_settings
from metrify_assets.resources import PostgresResource
from metrify_assets.serving.db import open_pool

pytestmark = pytest.mark.postgres


def received(text: str) -> dict[str, float]:
    return {
        s.labels["source"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "metrify_records_received_total"
    }


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


def test_serve_answers_scrapes_until_stopped(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop `metrify metrics serve` runs (its SIGTERM handler sets `stop`), on the CLI's pool."""
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    settings = resolve_settings(env)
    port, stop = free_port(), threading.Event()
    with open_pool(env["METRIFY_POSTGRES_URL"], max_size=1) as pool:
        registry = settings_registry(settings, lambda: pool.connection(timeout=5))
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
