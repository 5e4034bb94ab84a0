"""What the platform holds and owes now: sources, waiting work, owed runs, alerts, the daemon.

`metrify status` (`--json`). One screen an operator reads first: per source its newest record (in
PostgreSQL, with the days the lifecycle moved out of it to the lake) and batch, quality score, landing files and Kafka messages waiting, dead letters and review backlog; the
days touched since the last `metrify run`; downstream runs that failed and are owed; open alerts and
the grid's state; where the lifecycle keeps each dataset's days; each downstream job's last run; whether a Dagster daemon is running. Then what to
act on, each line with the command that acts. Exit code 1 when a store could not be read (its
figures are left out, not shown as zeros).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from metrify_assets.cli.console import command_console, to_json
from metrify_assets.cli.db import note_embedded_server

if TYPE_CHECKING:
    from metrify_assets.orchestration.status import Status
    from metrify_assets.storage.days import LakeDays


def ago(then: datetime | None, now: datetime) -> str:
    """`then` and how long before `now`, to the minute ("-" when there is none)."""
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        age = f"{seconds} s"
    elif seconds < 2 * 3600:
        age = f"{seconds // 60} min"
    elif seconds < 2 * 86400:
        age = f"{seconds // 3600} h"
    else:
        age = f"{seconds // 86400} d"
    return f"{then:%Y-%m-%d %H:%M} ({age} ago)"


def newest_record(then: datetime | None, lake: LakeDays | None, now: datetime) -> str:
    """The newest record in PostgreSQL (`ago`) and, when the lifecycle moved days of the source to the
    lake, through which day: the newest data may be there (a lone late record in PostgreSQL, or none)."""
    text = ago(then, now)
    gone = lake.newest_hot_deleted if lake is not None else None
    if gone is None:
        return text
    if then is None:
        return f"{text} (none hot; lake through {gone})"
    if gone >= then.date():
        return f"{text} (a late record; lake through {gone})"
    return f"{text} (older days: lake through {gone})"


def lifecycle_line(lake: dict[str, LakeDays], holds: int | None, late: dict[str, int] | None = None) -> str:
    """Days per lake tier of each dataset, how many left PostgreSQL, the late rows kept hot until their
    archived day is restored (`metrify_lifecycle_late_rows_waiting`), and the legal holds standing."""
    parts = []
    for days in lake.values():
        tiers = ", ".join(f"{tier} {n}" for tier, n in days.tiers.items())
        waiting = (late or {}).get(days.dataset, 0)
        restore = f", {waiting:,} late rows wait for a restore" if waiting else ""
        parts.append(f"{days.dataset} {tiers} ({days.hot_deleted} out of PostgreSQL{restore})")
    held = "" if holds is None else f"; legal holds standing: {holds}"
    return ("days in the lake: " + "; ".join(parts) if parts else "no day in the lake yet") + held


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def print_status(console: Console, status: Status) -> None:
    """The status as tables, then what to act on."""
    from metrify_assets.grid.area_history import chosen_by
    from metrify_assets.orchestration.status import attention
    from metrify_assets.partitions import contiguous_ranges, ranges_text

    now = status.at
    sources = Table(title=f"metrify status at {now:%Y-%m-%d %H:%M:%S} UTC")
    for column in ("source", "newest record", "last batch", "from", "quality", "landing files", "Kafka lag"):
        sources.add_column(column)
    for column in ("dead letters (replayable)", "to review"):
        sources.add_column(column, justify="right")
    for s in status.sources:
        sources.add_row(
            s.source,
            newest_record(s.last_record, (status.lake or {}).get(s.source), now),
            ago(s.last_batch, now),
            s.last_batch_file or "-",
            "-" if s.quality_score is None else f"{s.quality_score:.1f}",
            _count(s.landing_files),
            _count(s.kafka_lag),
            _count(s.dead_letters),
            _count(s.review_pending),
        )
    console.print(sources)

    # A run's start and a success's end: the newest run may still be running, and a success is what
    # it built up to. Named so, as a trial read "last run 02:59" before "last success 03:02" as odd.
    jobs = Table(title="downstream jobs", show_header=True)
    for column in ("job", "last run started", "its status", "last success ended"):
        jobs.add_column(column)
    for job in status.jobs:
        jobs.add_row(
            job.job, ago(job.last_run_at, now), job.last_status or "never ran", ago(job.last_success_at, now)
        )
    if status.jobs:
        console.print(jobs)

    facts = Table(show_header=False, box=None)
    if status.daemon_heartbeat is None:
        daemon = "not running (never ran on this instance): schedules and sensors do not tick"
    elif status.daemon_running:
        daemon = f"running (last heartbeat {ago(status.daemon_heartbeat, now)})"
    else:
        daemon = f"not running (last heartbeat {ago(status.daemon_heartbeat, now)}): schedules and sensors do not tick"
    facts.add_row("Dagster daemon", daemon)
    if status.schedules_on is not None:
        facts.add_row("schedules turned on", ", ".join(status.schedules_on) or "none (they start off)")
    if status.sensors_on is not None:
        facts.add_row("sensors turned on", ", ".join(status.sensors_on) or "none besides those on by default")
    unread = "- (PostgreSQL could not be read)"
    if status.touched_days is not None:
        touched = ranges_text(contiguous_ranges(status.touched_days)) or "none"
    else:
        touched = unread if status.owed is None else "none (no `metrify run` on this instance yet)"
    facts.add_row("days touched since the last `metrify run`", touched)
    owed = ", ".join(f"{run.job} {run.days}" for run in status.owed or [])
    facts.add_row(
        "lifecycle (`metrify lifecycle status`)",
        unread
        if status.lake is None
        else lifecycle_line(status.lake, status.holds, status.late_rows_waiting),
    )
    facts.add_row("runs owed (failed, not made up for)", unread if status.owed is None else owed or "none")
    alerts = ", ".join(
        f"{count} {severity}" for severity, count in sorted((status.open_alerts or {}).items())
    )
    facts.add_row("open alerts", unread if status.open_alerts is None else alerts or "none")
    for line in status.critical_alerts:
        facts.add_row("", escape(line))
    facts.add_row(
        "grid area (judges the grid nodes)", f"{status.grid_area} ({chosen_by(status.grid_area_from)})"
    )
    if status.grid_nodes:
        facts.add_row(
            "grid nodes", ", ".join(f"{n} {state}" for state, n in sorted(status.grid_nodes.items()))
        )
    if status.anomaly_rate is not None:
        facts.add_row("anomalous share, newest scored day", f"{status.anomaly_rate:.2%}")
    if status.vee_estimated_share is not None:
        facts.add_row("estimated share (VEE), newest day", f"{status.vee_estimated_share:.2%}")
    console.print(facts)

    todo = attention(status)
    if todo:
        console.print("[bold]needs attention[/bold]")
        for line in todo:
            console.print(f"  - {escape(line)}")
    else:
        console.print("nothing needs attention")


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_cmd(
        as_json: Annotated[bool, typer.Option("--json", help="Print the status as one JSON object.")] = False,
    ) -> None:
        """What the platform holds and owes now: per source the newest record and batch, quality score
        and what waits (landing files, Kafka lag, dead letters, review); days touched since the last
        `metrify run`; downstream runs owed; open alerts; grid states; each downstream job's last run;
        whether the Dagster daemon runs and which schedules and sensors are turned on; then what needs
        attention. Exit code 1 when a store (PostgreSQL,
        Kafka, Dagster's run storage) could not be read: its figures are left out, not shown as zeros."""
        from metrify_assets.cli.metrics import error_line
        from metrify_assets.env import resolve_settings
        from metrify_assets.orchestration.instance import local_instance
        from metrify_assets.orchestration.status import as_json as status_json
        from metrify_assets.orchestration.status import gather
        from metrify_assets.resources.build import kafka_resource, postgres_resource

        settings = resolve_settings()
        kafka = kafka_resource(settings) if settings.uses_kafka else None
        instance = local_instance(settings)
        status = gather(
            postgres_resource(settings),
            kafka,
            settings.landing_dir,
            instance,
            error_line,
            landing_named=settings.landing_dir_named,
            grid_area=settings.grid_area,
            grid_area_from=settings.grid_area_from,
        )
        if as_json:
            typer.echo(to_json(status_json(status)))
        else:
            print_status(command_console(), status)
            note_embedded_server(settings)
        if status.unreadable:
            raise typer.Exit(code=1)
