"""Prometheus metrics of the pipeline: an exporter without the data API, or the current values.

`metrify metrics serve` (a Prometheus exporter without the data API) and `metrify metrics show`.
A collector that fails is only counted by the exporter (`metrify_metrics_collect_errors_total`), but
makes `show` exit 1 after printing the rest: a one-shot scrape is read by a person or a script, who
would otherwise take missing families for zeros.

Both compute the pipeline metrics from the configured stores (PostgreSQL, Kafka when configured, the
Dagster instance of DAGSTER_HOME); the API's request metrics live in the API process (its `/metrics`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Annotated

import typer
from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from metrify_assets.cli.main import unreachable_database
from metrify_assets.env import Settings, resolve_settings

if TYPE_CHECKING:
    from metrify_assets.observability.metrics import Connect, PipelineCollector


def settings_collector(settings: Settings, connect: Connect) -> PipelineCollector:
    """The pipeline metrics of the configured stores, on PostgreSQL connections from `connect`."""
    from metrify_assets.observability.metrics import PipelineCollector
    from metrify_assets.orchestration.instance import local_instance
    from metrify_assets.resources.build import kafka_resource

    return PipelineCollector(
        connect,
        kafka=kafka_resource(settings) if settings.uses_kafka else None,
        instance=lambda: local_instance(settings),
    )


def error_line(err: BaseException) -> str:
    """Why a store could not be read, on one line; an unreachable PostgreSQL is said as every other
    command says it (the URL, which may hold a password, is not repeated)."""
    return unreachable_database(err) or " ".join(str(err).split()) or type(err).__name__


def failed_collectors(failing: Mapping[str, Exception]) -> str:
    """One line naming each failed collector and why."""
    reasons = "; ".join(f"{name} ({error_line(err)})" for name, err in failing.items())
    return f"metrics collectors failed, their metrics are left out above: {reasons}"


def serve_until(stop: threading.Event, registry: CollectorRegistry, host: str, port: int) -> None:
    """Answer scrapes of `registry` at http://host:port/metrics (a thread per scrape) until `stop`."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    try:
        stop.wait()
    finally:
        server.shutdown()
        thread.join()


def register(app: typer.Typer) -> None:
    metrics_app = typer.Typer(
        help="Prometheus metrics of the pipeline (docs/operations.md#metrics).", no_args_is_help=True
    )

    @metrics_app.command("serve")
    def serve_cmd(
        host: Annotated[
            str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 9464,
    ) -> None:
        """Serve the pipeline metrics at http://HOST:PORT/metrics until Ctrl-C or SIGTERM (for a
        deployment without the data API, whose own /metrics serves the same and its request metrics)."""
        from metrify_assets.observability.metrics import pipeline_registry
        from metrify_assets.resources.build import postgres_resource
        from metrify_assets.serving.pool import open_pool

        settings = resolve_settings()
        postgres = postgres_resource(settings)
        with postgres.connect():  # starts the embedded server if need be; applies migrations
            pass
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        with open_pool(postgres.get_url(), max_size=1) as pool:
            registry = pipeline_registry(settings_collector(settings, lambda: pool.connection(timeout=5)))
            typer.echo(f"metrics on http://{host}:{port}/metrics (Ctrl-C stops)", err=True)
            try:
                serve_until(stop, registry, host, port)
            except KeyboardInterrupt:
                typer.echo("stopped", err=True)

    @metrics_app.command("show")
    def show_cmd() -> None:
        """Print one scrape in the Prometheus text format (what Prometheus would read now).

        Exit status 1, after printing what could be read, when a collector failed (PostgreSQL or Kafka
        unreachable, a table missing): the error line on stderr names each one and why."""
        from metrify_assets.observability.metrics import pipeline_registry
        from metrify_assets.resources.build import postgres_resource

        settings = resolve_settings()
        postgres = postgres_resource(settings)

        collector = settings_collector(settings, partial(postgres.connect, autocommit=True))
        typer.echo(generate_latest(pipeline_registry(collector)).decode(), nl=False)
        failing = collector.failing
        if failing:
            typer.echo(f"error: {failed_collectors(failing)}", err=True)
            raise typer.Exit(code=1)

    app.add_typer(metrics_app, name="metrics")
