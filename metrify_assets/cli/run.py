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
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from metrify_assets.cli.console import command_console
from metrify_assets.cli.db import note_embedded_server
from metrify_assets.env import Settings, resolve_settings

if TYPE_CHECKING:
    from metrify_assets.orchestration import catchup


@contextmanager
def stage_progress(console: Console) -> Iterator[catchup.Progress]:
    """A progress bar per pipeline stage, for `catchup`'s callbacks."""
    from metrify_assets.orchestration import catchup

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

        yield catchup.Progress(on_plan, on_step, bars.console.print)
        for stage, task in tasks.items():
            bars.update(task, description=stage)


def pipeline_with_progress(settings: Settings, console: Console, trigger: str) -> catchup.RunSummary:
    """`catchup.run_pipeline` with a progress bar per stage."""
    from metrify_assets.definitions import defs as load_defs  # the code location: loaded only when needed
    from metrify_assets.orchestration import catchup
    from metrify_assets.orchestration.instance import local_instance

    with stage_progress(console) as progress:
        return catchup.run_pipeline(
            load_defs(), local_instance(settings), settings, progress, trigger=trigger
        )


def run_with_progress(settings: Settings, console: Console, trigger: str) -> catchup.RunSummary:
    """`pipeline_with_progress` for a command that goes on after it (the demo): a failed run ends
    the command there, with the summary and exit code 1."""
    summary = pipeline_with_progress(settings, console, trigger)
    if summary.failed or summary.unread:
        note_embedded_server(settings)
        print_run_summary(console, summary)
    return summary


def print_run_summary(console: Console, summary: catchup.RunSummary) -> None:
    """The summary table; when a run failed or Kafka could not be read, the errors too, what runs it
    again, then exit code 1."""
    if summary.idle:
        console.print(
            f"metrify run: nothing to do (no landing file, Kafka message or touched day waiting, and no "
            f"failed run owed; {summary.seconds:.1f} s)"
        )
        return
    table = Table(title="metrify run", show_header=False)
    table.add_row("batches ingested", f"{len(summary.batch_ids)}")
    for source, counts in summary.records.items():
        flagged = f" ({counts.flagged:,} flagged for review)" if counts.flagged else ""
        table.add_row(
            f"  {source}",
            f"{counts.records_in:,} record{'' if counts.records_in == 1 else 's'} = {counts.accepted:,} accepted{flagged} + "
            f"{counts.quarantined:,} quarantined",
        )
    from metrify_assets.partitions import ranges_text

    days = ranges_text(summary.day_ranges) or "none"
    table.add_row("days materialised", days)
    trained = (
        "yes" if summary.trained_model else "failed" if summary.training_failed else "no (current one kept)"
    )
    table.add_row("anomaly model trained", trained)
    for run in summary.alerts_recorded:
        table.add_row("  alert recorded", f"run {run} (failed earlier; its alert had not been recorded)")
    for job in summary.retried:
        table.add_row("  run again", f"{job} (failed before)")
    for job in summary.jobs:
        table.add_row("  ran", job)
    for job in summary.skipped:
        table.add_row("  [yellow]skipped[/yellow]", f"{job} (refresh_job failed for those days)")
    for error in summary.failed:
        table.add_row("  [red]failed[/red]", escape(error))
    for error in summary.unread:
        table.add_row("  [red]Kafka not drained[/red]", escape(error))
    table.add_row("took", f"{summary.seconds:.1f} s")
    console.print(table)
    if summary.unread:
        console.print("[red]Kafka could not be read[/red]: the next `metrify run` drains what is waiting")
    if summary.failed:
        console.print(failed_runs_line(summary.failed))
        if summary.owed:
            console.print(f"the next `metrify run` runs again: {escape(', '.join(summary.owed))}")
        if summary.skipped:
            console.print("and daily_job for the days of each refresh_job once that succeeds")
        if summary.training_failed:
            console.print(
                "the anomaly model's training is not run again by itself: the next `metrify run` that "
                "ingests meter readings while there is no model tries it, as does the weekly schedule"
            )
    if summary.failed or summary.unread:
        raise typer.Exit(1)


def failed_runs_line(errors: list[str]) -> str:
    """How many runs failed and what became of their alerts: a run whose alert could not be recorded
    (its error says so) has none yet, and the next `metrify run` records it first."""
    from metrify_assets.orchestration.instance import alert_unrecorded

    failed, unrecorded = len(errors), sum(alert_unrecorded(error) for error in errors)
    line = f"[red]{failed} {'run' if failed == 1 else 'runs'} failed[/red]: "
    if not unrecorded:
        return line + "each raised a run_failure alert (`metrify alerts list`)"
    if unrecorded == failed:
        line += "its alert could not be recorded" if failed == 1 else "none of their alerts could be recorded"
    else:
        line += (
            f"{failed - unrecorded} raised a run_failure alert (`metrify alerts list`), and the alert of "
            f"{unrecorded} could not be recorded"
        )
    them = "it" if unrecorded == 1 else "them"
    return (
        line + f"; the next `metrify run` records {them} before it plans its runs (as does a running "
        "daemon's run_alerts_reconcile_sensor within 5 minutes)"
    )


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        as_json: bool = typer.Option(False, "--json", help="Print one JSON summary object as the last line."),
    ) -> None:
        """Ingest everything waiting (landing files; Kafka when KAFKA_BOOTSTRAP_SERVERS is set), then build
        anomaly scores, enrichment, the dbt marts, the archive and the quality report for the days touched.
        A downstream run that failed on an earlier `metrify run` (or under the daemon) is run again. Exit
        code 1 when a run failed or Kafka could not be read. Nothing new and nothing failed: nothing to do."""
        console = command_console(stderr=as_json)
        settings = resolve_settings()
        summary = pipeline_with_progress(settings, console, trigger="cli")
        if as_json:
            out = asdict(summary)
            out["day_ranges"] = [[a.isoformat(), b.isoformat()] for a, b in summary.day_ranges]
            typer.echo(json.dumps(out))
        note_embedded_server(settings)
        print_run_summary(console, summary)
