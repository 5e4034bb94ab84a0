"""Ingest everything waiting (landing files; Kafka when configured), then build the downstream graph for
the days touched, with progress and a summary.

`metrify run`: the landing files and Kafka topics are ingested as Dagster runs, then the downstream
jobs materialise the days those runs touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from metrify_assets.cli.db import note_embedded_server
from metrify_assets.definitions import defs as load_defs
from metrify_assets.env import Settings, resolve_settings
from metrify_assets.orchestration import catchup
from metrify_assets.orchestration.instance import local_instance


@contextmanager
def stage_progress(console: Console) -> Iterator[catchup.Progress]:
    """A progress bar per pipeline stage, for `catchup`'s callbacks."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bars:
        tasks: dict[str, Any] = {}
        current: list[str] = []

        def on_plan(stage: str, total: int) -> None:
            tasks[stage] = bars.add_task(stage, total=total or None)
            current[:] = [stage]

        def on_step(description: str) -> None:
            stage = current[0]
            bars.update(tasks[stage], advance=1, description=f"{stage}: {description}")

        yield catchup.Progress(on_plan, on_step)
        for stage, task in tasks.items():
            bars.update(task, description=stage)


def run_with_progress(settings: Settings, console: Console, trigger: str) -> catchup.RunSummary:
    """`catchup.run_pipeline` with a progress bar per stage."""
    with stage_progress(console) as progress:
        return catchup.run_pipeline(
            load_defs(), local_instance(settings), settings, progress, trigger=trigger
        )


def print_run_summary(console: Console, summary: catchup.RunSummary) -> None:
    table = Table(title="metrify run", show_header=False)
    table.add_row("batches ingested", f"{len(summary.batch_ids)}")
    days = ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in summary.day_ranges) or "none"
    table.add_row("days materialised", days)
    table.add_row("anomaly model trained", "yes" if summary.trained_model else "no (current one kept)")
    for job in summary.jobs:
        table.add_row("  ran", job)
    table.add_row("took", f"{summary.seconds:.1f} s")
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        as_json: bool = typer.Option(False, "--json", help="Print one JSON summary object as the last line."),
    ) -> None:
        """Ingest everything waiting (landing files; Kafka when KAFKA_BOOTSTRAP_SERVERS is set), then build
        anomaly scores, enrichment, the dbt marts, the archive and the quality report for the days touched.
        Nothing new: nothing to do."""
        console = Console(stderr=as_json)
        settings = resolve_settings()
        summary = run_with_progress(settings, console, trigger="cli")
        print_run_summary(console, summary)
        if as_json:
            out = asdict(summary)
            out["day_ranges"] = [[a.isoformat(), b.isoformat()] for a, b in summary.day_ranges]
            typer.echo(json.dumps(out))
        note_embedded_server(settings)
