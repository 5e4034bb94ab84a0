"""Generate telemetry for a synthetic network (meters, grid nodes, weather stations, with labelled
faults) and land it for the pipeline.

`metrify simulate`: writes landing files, or sends to Kafka with `--to kafka`.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from metrify_assets.cli.console import command_console
from metrify_assets.contracts import CONTRACTS
from metrify_assets.env import Settings, resolve_settings


def _to_kafka(console: Console, settings: Settings, messages: dict[str, list[str]], backfill: bool) -> None:
    """Produce the messages to the source topics (created with 3 partitions when missing)."""
    from metrify_assets.ingestion.kafka.produce import produce
    from metrify_assets.resources.build import kafka_resource

    if not settings.uses_kafka:
        raise typer.BadParameter(
            "--to kafka needs KAFKA_BOOTSTRAP_SERVERS (e.g. from `metrify kafka broker`)"
        )
    kafka = kafka_resource(settings)
    kafka.ensure_topics()
    began = time.monotonic()
    sent = produce(kafka, messages, backfill=backfill)
    took = time.monotonic() - began
    console.print(
        f"produced {sum(sent.values()):,} messages in {took:.1f} s to {kafka.bootstrap_servers}: {sent}"
    )


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_cmd(
        meters: Annotated[int, typer.Option(min=1, help="Number of smart meters.")] = 200,
        days: Annotated[int, typer.Option(min=1, help="Local calendar days to simulate.")] = 2,
        start: Annotated[
            datetime,
            typer.Option(
                formats=["%Y-%m-%d"],
                show_default="2026-03-28",
                help="First local day (default spans a DST change).",
            ),
        ] = datetime(2026, 3, 28),
        seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 42,
        fault_rate: Annotated[
            float, typer.Option(min=0.0, max=0.5, help="Probability that a record gets a fault.")
        ] = 0.01,
        shift_share: Annotated[
            float,
            typer.Option(
                min=0.0,
                max=1.0,
                help="Share of meters reading 25-35 % off for a few days (consumption_shift).",
            ),
        ] = 0.0,
        landing_dir: Annotated[
            Path | None, typer.Option(help="Landing directory (default: METRIFY_LANDING_DIR, HOME/landing).")
        ] = None,
        to: Annotated[
            str, typer.Option(help="'landing' (files) or 'kafka' (the topics at KAFKA_BOOTSTRAP_SERVERS).")
        ] = "landing",
        labels: Annotated[
            Path | None,
            typer.Option(help="Fault labels as JSON Lines (default: HOME/simulation/labels.jsonl)."),
        ] = None,
        sources: Annotated[
            str,
            typer.Option(
                help="Comma-separated sources to land: meter_readings, grid_status, weather_observations."
            ),
        ] = ",".join(CONTRACTS),
        registry: Annotated[
            bool, typer.Option(help="Write the meter registry file (--no-registry: a head-end without one).")
        ] = True,
        backfill: Annotated[
            bool,
            typer.Option(
                "--backfill/--live",
                help="Declare the messages history (not scored for timeliness); --live scores them "
                "against their landing (or produce) time.",
            ),
        ] = True,
    ) -> None:
        """Generate telemetry for a synthetic network and land it for the pipeline to ingest."""
        from metrify_assets.simulation import SimulationConfig, simulate, write_simulation
        from metrify_assets.simulation.generate import STAGES

        settings = resolve_settings()
        landing = landing_dir or settings.landing_dir
        labels_path = labels or settings.home / "simulation" / "labels.jsonl"
        config = SimulationConfig(
            meters=meters,
            days=days,
            start=date.fromordinal(start.toordinal()),
            seed=seed,
            fault_rate=fault_rate,
            shift_share=shift_share,
        )
        console = command_console()
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("simulating", total=len(STAGES))
            sim = simulate(config, on_stage=lambda stage: progress.update(task, advance=1, description=stage))
        if to not in ("landing", "kafka"):
            raise typer.BadParameter(f"--to must be 'landing' or 'kafka', not {to!r}")
        if to == "kafka":
            _to_kafka(console, settings, sim.messages, backfill)
            return
        chosen = [s.strip() for s in sources.split(",") if s.strip()]
        try:
            summary = write_simulation(
                sim, landing, labels_path, sources=chosen, registry=registry, backfill=backfill
            )
        except ValueError as err:
            raise typer.BadParameter(str(err), param_hint="--sources") from err

        table = Table(title=f"Simulated {meters} meters x {days} days from {config.start} (seed {seed})")
        table.add_column("source")
        table.add_column("files", justify="right")
        table.add_column("messages", justify="right")
        for source, count in summary.messages.items():
            files = sum(1 for f in summary.files if f.source == source)
            table.add_row(source, str(files), f"{count:,}")
        console.print(table)
        faults = ", ".join(f"{kind} {n}" for kind, n in sorted(summary.faults.items())) or "none"
        console.print(f"faults injected: {faults}")
        console.print(f"landing: {landing}")
        console.print(f"meter registry: {summary.meters_csv or 'not written'}\nlabels: {summary.labels_path}")
