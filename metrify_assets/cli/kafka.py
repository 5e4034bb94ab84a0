"""Kafka: a local broker for development, and draining the topics.

`metrify kafka broker` (a local Apache Kafka for development) and `metrify kafka drain`.
"""

from __future__ import annotations

import os
import signal
import time
from types import FrameType
from typing import Annotated

import typer
from rich.table import Table

from metrify_assets.cli.console import command_console
from metrify_assets.cli.db import note_embedded_server
from metrify_assets.contracts import CONTRACTS
from metrify_assets.env import resolve_settings
from metrify_platform.kafka_broker import KAFKA_VERSION

kafka_app = typer.Typer(
    help="Kafka: a local broker for development, and draining the topics.", no_args_is_help=True
)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a supervisor, `kill`) stops the broker like Ctrl-C, instead of orphaning the JVM."""
    raise KeyboardInterrupt


@kafka_app.command("broker")
def broker_cmd(
    port: Annotated[int, typer.Option(help="Loopback port of the PLAINTEXT listener.")] = 9092,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of the topics it creates.")] = 3,
    version: Annotated[
        str, typer.Option(help="Apache Kafka version (jars from Maven Central).")
    ] = KAFKA_VERSION,
) -> None:
    """Run a single-node Kafka (KRaft) with the Metrify topics until Ctrl-C; data kept in HOME/kafka."""
    from metrify_assets.resources.build import kafka_resource
    from metrify_platform.kafka_broker import KafkaBroker

    settings = resolve_settings()
    console = command_console()
    signal.signal(signal.SIGTERM, _interrupt)
    with console.status(f"starting Apache Kafka {version} (first run fetches its jars with Maven)..."):
        broker = KafkaBroker(version=version, port=port, data_dir=settings.home / "kafka").start()
    try:
        resource = kafka_resource(settings).model_copy(update={"bootstrap_servers": broker.bootstrap_servers})
        resource.ensure_topics(partitions)
        console.print(f"Kafka {version} on {broker.bootstrap_servers} (log: {broker.log_path})")
        console.print(f"export KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping Kafka...")
    finally:
        broker.stop()


@kafka_app.command("drain")
def drain_cmd(
    source: Annotated[
        list[str] | None, typer.Option(help=f"Sources to drain (default all): {', '.join(CONTRACTS)}.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="Ranges ingested at once, each in a forked process (0: one per core; 1: in this process); "
            "a range that would run alone at the end is cut between them.",
        ),
    ] = 0,
) -> None:
    """Ingest everything now in the topics (sensor planning + ingest job, in process), then summarise."""
    settings = resolve_settings()
    if not settings.uses_kafka:  # before the code location's seconds of imports
        typer.echo(
            "error: Kafka is not configured: set KAFKA_BOOTSTRAP_SERVERS (for a local broker: "
            "`metrify kafka broker`)",
            err=True,
        )
        raise typer.Exit(code=2)
    from metrify_assets.definitions import defs as load_defs  # the code location: loaded only when needed
    from metrify_assets.orchestration.drain import drain
    from metrify_assets.orchestration.instance import local_instance
    from metrify_assets.resources.build import kafka_resource, postgres_resource

    console = command_console()
    with console.status("draining...") as status:
        summary = drain(
            load_defs(),
            local_instance(settings),
            kafka_resource(settings),
            postgres_resource(settings),
            sources=source or list(CONTRACTS),
            on_batch=lambda batch_id: status.update(f"ingested {batch_id}"),
            workers=workers or os.cpu_count() or 1,
        )
    table = Table(title="metrify kafka drain", show_header=False)
    table.add_row("batches", f"{summary.batches}")
    table.add_row("records", f"{summary.records:,}")
    table.add_row("accepted", f"{summary.accepted:,}")
    table.add_row("quarantined", f"{summary.quarantined:,}")
    table.add_row("took", f"{summary.seconds:.1f} s")
    table.add_row("records/s", f"{summary.records_per_second:,.0f}")
    console.print(table)
    for topic in summary.no_topic:
        console.print(f"[dim]no topic {topic} (nothing produced to it yet)[/dim]")
    for batch_id, error in summary.failed.items():
        console.print(f"[red]failed[/red] {batch_id}: {error}")
    for name, error in summary.unread.items():
        console.print(f"[red]not drained[/red] {name}: {error}")
    note_embedded_server(settings)
    if summary.failed or summary.unread:
        counts = [f"{len(summary.failed)} ranges failed"] if summary.failed else []
        counts += [f"{len(summary.unread)} sources not drained"] if summary.unread else []
        console.print(f"{', '.join(counts)}; run `metrify kafka drain` again once the cause is fixed")
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    app.add_typer(kafka_app, name="kafka")
