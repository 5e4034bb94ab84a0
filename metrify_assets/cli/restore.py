"""Restore days to PostgreSQL from their lake copies (archive), or by replaying their raw batches (as of
a point in time).

`metrify restore`: bring a range of days back to the hot tier, from its lake copies (archive) or by
replaying its raw batches (raw: the operational state as of a point in time). Both are idempotent.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from metrify_assets.cli.audit import cli_caller, who
from metrify_assets.cli.console import command_console, to_json
from metrify_assets.cli.db import note_embedded_server
from metrify_assets.cli.options import day_range
from metrify_assets.env import resolve_settings
from metrify_assets.lifecycle.policy import DEFAULT_KEEP_DAYS, MAX_KEEP_DAYS, TIERED_DATASETS
from metrify_assets.resources.lake import Lake

if TYPE_CHECKING:
    from metrify_assets.lifecycle.restore import DayRestore

USING = ("archive", "raw")


def _archive_summary(
    dataset: str, first: date, last: date, dry_run: bool, outcomes: list[DayRestore]
) -> dict[str, Any]:
    """The archive restore as one JSON object: the range, each day's outcome, and the days marked (or,
    in a dry run, to be marked) to rebuild."""
    done = "would restore" if dry_run else "restored"
    return {
        "source": dataset,
        "days": f"{first}..{last}",
        "using": "archive",
        "dry_run": dry_run,
        "outcomes": [
            {
                "day": o.day.isoformat(),
                "action": o.action,
                "tier": o.tier,
                "storage_class": o.storage_class,
                "rows": o.rows,
                "detail": o.detail,
            }
            for o in outcomes
        ],
        "rebuild": [o.day.isoformat() for o in outcomes if o.action == done],
    }


def register(app: typer.Typer) -> None:
    @app.command("restore")
    def restore_cmd(
        first: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD).")],
        last: Annotated[str | None, typer.Option("--to", help="Last day; default: the first.")] = None,
        dataset: Annotated[
            str, typer.Option(help=f"One of {', '.join(TIERED_DATASETS)}.")
        ] = "meter_readings",
        using: Annotated[
            str,
            typer.Option(
                help="archive: the days' lake copies (GLACIER ones are requested first, then read on a later "
                "run); raw: rebuild the days' rows by replaying their raw batches (a rollback with --as-of; "
                "also the way back for an archived day whose lake copy is missing)."
            ),
        ] = "archive",
        as_of: Annotated[
            str | None,
            typer.Option(
                help="With --using raw only: replay the batches processed up to this time (ISO 8601, UTC). "
                "Refused with archive: a copy holds its day as it was archived."
            ),
        ] = None,
        keep_days: Annotated[
            int,
            typer.Option(
                help=f"Restored days stay hot this many days (0 to {MAX_KEEP_DAYS}; 0: through today) before "
                "the hot window applies.",
            ),
        ] = DEFAULT_KEEP_DAYS,
        dry_run: Annotated[
            bool,
            typer.Option(
                help="Report what would change and change nothing. archive: per day its tier and storage "
                "class, the copy's rows, whether an archive-class restore would be requested (a paid S3 "
                "retrieval) or is in progress, and the days that would be marked to rebuild; nothing is "
                "read, requested or written. raw: the rows the replay would change."
            ),
        ] = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print one JSON object as the last line of stdout.")
        ] = False,
    ) -> None:
        """Restore days to PostgreSQL. Re-run the downstream jobs for them afterwards (`metrify run`
        does so for days it ingests; the Dagster UI for any range). Exit status 1 when a day fails, or
        when no day of the range has a lake copy and PostgreSQL has none of its rows (nothing to
        restore); days already hot exit 0."""
        from metrify_assets.lifecycle import rollback
        from metrify_assets.lifecycle.restore import has_hot_rows, restore_days
        from metrify_assets.resources.build import postgres_resource
        from metrify_assets.resources.cache import open_cache

        first_day, last_day = day_range(first, last)
        if dataset not in TIERED_DATASETS:
            raise typer.BadParameter(
                f"{dataset!r} is not one of {', '.join(TIERED_DATASETS)}", param_hint="--dataset"
            )
        if using not in USING:
            raise typer.BadParameter(f"{using!r} is not one of {', '.join(USING)}", param_hint="--using")
        if not 0 <= keep_days <= MAX_KEEP_DAYS:
            raise typer.BadParameter(
                f"must be 0 to {MAX_KEEP_DAYS} days, got {keep_days}", param_hint="--keep-days"
            )
        if as_of is not None and using != "raw":
            raise typer.BadParameter(
                "applies to --using raw only (replay the batches processed up to then); a lake copy holds "
                "its day as it was archived, with no earlier state to choose",
                param_hint="--as-of",
            )
        console = command_console(stderr=as_json)
        settings = resolve_settings()
        lake = Lake(settings.lake_url)
        cache = open_cache(settings)  # kept coherent after the restore commits
        now = datetime.now(UTC)
        caller = cli_caller(who())
        with postgres_resource(settings).connect() as conn:
            if using == "raw":
                try:
                    cutoff = datetime.fromisoformat(as_of) if as_of else None
                except ValueError as err:
                    typer.echo(f"error: --as-of must be an ISO 8601 time, got {as_of!r}", err=True)
                    raise typer.Exit(code=2) from err
                if cutoff is not None and cutoff.tzinfo is None:
                    cutoff = cutoff.replace(tzinfo=UTC)
                try:
                    with console.status("replaying raw batches...") as status:
                        result = rollback.rebuild_from_raw(
                            conn,
                            lake,
                            dataset,
                            first_day,
                            last_day,
                            as_of=cutoff,
                            dry_run=dry_run,
                            on_batch=lambda batch: status.update(f"replaying {batch}"),
                            cache=cache,
                            caller=caller,
                            keep_days=keep_days,
                        )
                except rollback.RollbackError as err:
                    typer.echo(f"error: {err}", err=True)
                    raise typer.Exit(code=1) from err
                summary = rollback.describe(result)
                table = Table(
                    title=f"restore {dataset} {first_day}..{last_day} from raw batches", show_header=False
                )
                for name, value in summary.items():
                    table.add_row(name, str(value))
                console.print(table)
                if result.copies_missing:
                    days = ", ".join(str(d) for d in result.copies_missing)
                    console.print(
                        f"{days}: the lake copy is missing, so "
                        + ("these days would be rebuilt" if dry_run else "rebuilt")
                        + f" from their raw batches, hot until {result.keep_hot_until} (as a restore from "
                        "the copy); the lifecycle writes the copy again before the rows next leave"
                    )
                if as_json:
                    typer.echo(to_json({"using": "raw", **summary}))
                return
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as bars:
                task = bars.add_task("restoring", total=(last_day - first_day).days + 1)

                def on_day(outcome: DayRestore) -> None:
                    bars.update(task, advance=1, description=f"{outcome.day}: {outcome.action}")

                outcomes = restore_days(
                    conn,
                    lake,
                    dataset,
                    first_day,
                    last_day,
                    now,
                    keep_days,
                    on_day=on_day,
                    cache=cache,
                    caller=caller,
                    dry_run=dry_run,
                )
            nothing = not outcomes and not has_hot_rows(conn, dataset, first_day, last_day)
        span = f"{dataset} {first_day}..{last_day}"
        table = Table(title=f"restore {span}" + (" (dry run: nothing changed)" if dry_run else ""))
        for column in ("day", "outcome", "tier", "rows", "detail"):
            table.add_column(column)
        for o in outcomes:
            table.add_row(
                o.day.isoformat(), o.action, f"{o.tier} ({o.storage_class})", f"{o.rows:,}", o.detail
            )
        if outcomes:
            console.print(table)
        elif nothing:
            console.print(
                f"nothing to restore: no day of {span} has a lake copy, and PostgreSQL has none of its rows"
            )
        else:
            console.print(
                f"nothing to restore: no day of {span} has a lake copy; its rows in PostgreSQL never left"
            )
        rebuild = [o for o in outcomes if o.action == ("would restore" if dry_run else "restored")]
        if rebuild:
            days = f"{len(rebuild)} {'day' if len(rebuild) == 1 else 'days'}"
            console.print(
                (
                    f"dry run: {days} would be restored and marked to rebuild"
                    if dry_run
                    else f"{days} marked to rebuild"
                )
                + ": the next `metrify run` (or the daemon's late_days_sensor) re-materialises what derives "
                "from them (VEE, anomaly scores, enrichment, the marts)"
            )
        requests = [o for o in outcomes if o.action == "would request restore"]
        if requests:
            console.print(
                f"dry run: {len(requests)} {'day needs' if len(requests) == 1 else 'days need'} a restore from "
                "the archive class first (on S3 a paid retrieval, readable after hours); the restore "
                "requests it, and a later run reads it"
            )
        pending = [o for o in outcomes if o.action in ("restore requested", "restore in progress")]
        if pending:
            console.print(
                f"{len(pending)} {'day is' if len(pending) == 1 else 'days are'} being restored from the archive "
                "class: run the restore again once S3 has made the copies readable"
            )
        if as_json:
            typer.echo(to_json(_archive_summary(dataset, first_day, last_day, dry_run, outcomes)))
        note_embedded_server(settings)
        if nothing or any(o.failed for o in outcomes):
            raise typer.Exit(code=1)
