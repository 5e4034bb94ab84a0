"""Ingest everything waiting (landing files; Kafka when configured), then build the downstream graph for
the days touched, with progress and a summary.

`metrify run`: the landing files and Kafka topics are ingested as Dagster runs, then the downstream
jobs materialise the days those runs touched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from metrify_assets.cli.console import command_console
from metrify_assets.cli.db import note_embedded_server
from metrify_assets.cli.main import unreachable_database
from metrify_assets.env import Settings, resolve_settings

if TYPE_CHECKING:
    import dagster as dg

    from metrify_assets.orchestration import catchup
    from metrify_assets.orchestration.checks import FailedCheck


class StageClock(ProgressColumn):
    """The time from a stage's start to its end (the next stage's start), not to its last step as
    rich's `TimeElapsedColumn` has it: a materialising stage counts a job as it starts, so its bar is
    full while the last job still runs."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed
        if elapsed is None:
            return Text("-:--:--", style="progress.elapsed")
        return Text(str(timedelta(seconds=max(0, int(elapsed)))), style="progress.elapsed")


@contextmanager
def stage_progress(console: Console) -> Iterator[catchup.Progress]:
    """A progress bar per pipeline stage, for `catchup`'s callbacks. A stage's bar ends (its clock
    stops) when the next stage begins; a stage planned with nothing to count (no landing file; Kafka,
    whose count is not known ahead) shows only once a step comes, so an idle stage leaves no `0/?`
    line ticking on while the marts build.

    Without a terminal (cron, a log file, CI) Rich draws the bars only when they end, so each step is
    also printed as a line with the time since the start: a long run's log shows where it is."""
    from metrify_assets.orchestration import catchup

    logged = not console.is_terminal
    start = console.get_time()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        StageClock(),
        console=console,
    ) as bars:
        tasks: dict[str, TaskID] = {}
        current: list[str] = []

        def end_stage() -> None:
            if not current:
                return
            stage = current.pop()
            task = bars.tasks[tasks[stage]]
            # An open count (Kafka) ends at what it counted: `3/3`, not `3/?`.
            total = task.completed if task.total is None else task.total
            bars.update(tasks[stage], description=stage, total=total)
            bars.stop_task(tasks[stage])

        def log(text: str) -> None:
            if logged:
                since = timedelta(seconds=int(console.get_time() - start))
                bars.console.print(f"[{since}] {text}", markup=False, highlight=False)

        def on_plan(stage: str, total: int) -> None:
            end_stage()
            tasks[stage] = bars.add_task(stage, total=total or None, visible=bool(total))
            current.append(stage)
            if total:
                log(f"{stage}: {total} to do")

        def on_step(description: str) -> None:
            stage = current[0]
            bars.update(tasks[stage], advance=1, description=f"{stage}: {description}", visible=True)
            task = bars.tasks[tasks[stage]]
            log(
                f"{stage} {task.completed:.0f}/{'?' if task.total is None else f'{task.total:.0f}'}: {description}"
            )

        try:
            yield catchup.Progress(on_plan, on_step, bars.console.print)
        finally:
            end_stage()


def pipeline_with_progress(settings: Settings, console: Console, trigger: str) -> catchup.RunSummary:
    """`catchup.run_pipeline` with a progress bar per stage."""
    from metrify_assets.definitions import defs as load_defs  # the code location: loaded only when needed
    from metrify_assets.orchestration import catchup
    from metrify_assets.orchestration.instance import local_instance

    defs, instance = load_defs(), local_instance(settings)
    startup = process_age()
    began = datetime.now(UTC)
    try:
        with stage_progress(console) as progress:
            summary = catchup.run_pipeline(defs, instance, settings, progress, trigger=trigger)
    except Exception as err:
        if unreachable_database(err) is None:
            raise
        console.print(cut_short(failed_since(instance, began, trigger)), markup=False, highlight=False)
        raise  # the root group prints the outage in one line, with what to do about it
    summary.startup_seconds = round(startup, 1)
    summary.failed_checks = [str(check) for check in failed_checks_since(instance, began, trigger)]
    return summary


def failed_checks_since(instance: dg.DagsterInstance, began: datetime, trigger: str) -> list[FailedCheck]:
    """The ERROR-severity checks of the runs started with `trigger` since `began` whose latest
    evaluation failed (`checks.failed_error_checks`)."""
    import dagster as dg

    from metrify_assets.orchestration.checks import failed_error_checks
    from metrify_assets.partitions import TRIGGER_TAG

    records = instance.get_run_records(dg.RunsFilter(created_after=began, tags={TRIGGER_TAG: trigger}))
    return failed_error_checks(instance, (record.dagster_run.run_id for record in records))


def failed_since(instance: dg.DagsterInstance, began: datetime, trigger: str) -> list[str]:
    """The runs started with `trigger` since `began` that failed, oldest first, each as its job and
    days or batch (`run_alerts.RunAlert.subject`'s words) and its run id."""
    import dagster as dg

    from metrify_assets.partitions import TRIGGER_TAG
    from metrify_assets.run_alerts import BATCH_TAG, days_text, run_days

    records = instance.get_run_records(
        dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE], created_after=began, tags={TRIGGER_TAG: trigger}
        ),
        ascending=True,
    )
    runs = []
    for record in records:
        run = record.dagster_run
        days, batch = run_days(run.tags), run.tags.get(BATCH_TAG)
        what = f" {days_text(days)}" if days else f" (batch {batch})" if batch else ""
        runs.append(f"{run.job_name}{what} (run {run.run_id[:8]})")
    return runs


def cut_short(failed: list[str]) -> str:
    """What `metrify run` says when PostgreSQL went away before its summary (which reads its counts
    there): the runs that failed meanwhile, whose alerts could not be recorded, and what repairs them."""
    if not failed:
        return "metrify run stopped before any run failed: the next `metrify run` takes up what is left"
    runs = "run" if len(failed) == 1 else "runs"
    return (
        f"metrify run stopped; {len(failed)} {runs} failed before it, with no alert recorded yet: "
        f"{', '.join(failed)}. The next `metrify run` records their alerts and runs them again "
        "(`metrify status` lists them as owed meanwhile)"
    )


def process_age() -> float:
    """Seconds since this process started: what a command's user has waited, its imports included
    (Dagster, dbt and GX take most of 20 s on 2 busy cores)."""
    import psutil

    return max(0.0, time.time() - psutil.Process().create_time())


STARTUP = "start-up loading Dagster, dbt, GX and the code location"
# Every run succeeded, but a check of severity ERROR failed: not 1 (a run to make up, which the next
# `metrify run` does), since running again changes nothing until the data or the code does.
CHECKS_FAILED = 3


def took(summary: catchup.RunSummary, before: str = STARTUP) -> str:
    """The run's time from the command's start, and what went `before` the run: an idle run's 0.2 s
    of work read as the whole wait when the command took 24.5 s."""
    if not summary.startup_seconds:
        return f"{summary.seconds:.1f} s"
    total = summary.startup_seconds + summary.seconds
    return f"{total:.1f} s: {summary.seconds:.1f} s of work after {summary.startup_seconds:.1f} s of {before}"


def run_with_progress(settings: Settings, console: Console, trigger: str) -> catchup.RunSummary:
    """`pipeline_with_progress` for a command that goes on after it (the demo): a failed run ends
    the command there, with the summary and exit code 1."""
    summary = pipeline_with_progress(settings, console, trigger)
    if summary.failed or summary.unread:
        note_embedded_server(settings)
        print_run_summary(console, summary, before="start-up and what the command did before the run")
    return summary


def print_run_summary(console: Console, summary: catchup.RunSummary, before: str = STARTUP) -> None:
    """The summary table; when a run failed or Kafka could not be read, the errors too, what runs it
    again, then exit code 1; else, when a check of severity ERROR failed, exit code 3 (`CHECKS_FAILED`). `before`: what the command did before the run, for its time. A landing
    directory that should exist and does not is a warning on stderr first (a mistyped path would
    otherwise read as nothing to do)."""
    if summary.landing_missing:
        typer.echo(f"metrify run: warning: {summary.landing_missing}", err=True)
    if summary.idle:
        console.print(
            f"metrify run: nothing to do (no landing file, Kafka message or touched day waiting, and no "
            f"failed run owed; {took(summary, before)})"
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
    for check in summary.failed_checks:
        table.add_row("  [red]check failed[/red]", escape(check))
    for warning in summary.grid_area_warnings:
        table.add_row("  [yellow]warning[/yellow]", escape(warning))
    table.add_row("took", took(summary, before))
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
    if summary.failed_checks:
        checks = len(summary.failed_checks)
        console.print(
            f"[red]{checks} {'check' if checks == 1 else 'checks'} of severity ERROR failed[/red] (the data "
            "was written; each asset's Checks tab in `metrify ui` says why, and `metrify status` lists them "
            "until a later evaluation passes)"
        )
    if summary.failed or summary.unread:
        raise typer.Exit(1)
    if summary.failed_checks:
        raise typer.Exit(CHECKS_FAILED)


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
        code 1 when a run failed or Kafka could not be read; 3 when every run succeeded but an asset check
        of severity ERROR failed (listed in the summary). Nothing new and nothing failed: nothing to do."""
        console = command_console(stderr=as_json)
        settings = resolve_settings()
        summary = pipeline_with_progress(settings, console, trigger="cli")
        if as_json:
            out = asdict(summary)
            out["day_ranges"] = [[a.isoformat(), b.isoformat()] for a, b in summary.day_ranges]
            typer.echo(json.dumps(out))
        note_embedded_server(settings)
        print_run_summary(console, summary)
