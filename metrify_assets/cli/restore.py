"""Restore days to PostgreSQL from their lake copies (archive), or by replaying their raw batches (as of
a point in time).

`metrify restore`: bring a range of days back to the hot tier, from its lake copies (archive) or by
replaying its raw batches (raw: the operational state as of a point in time). Both are idempotent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from metrify_assets.cli.audit import cli_caller, who
from metrify_assets.cli.console import command_console, to_json
from metrify_assets.cli.db import note_embedded_server
from metrify_assets.cli.options import day_range
from metrify_assets.env import resolve_settings
from metrify_assets.lifecycle.policy import DEFAULT_KEEP_DAYS, TIERED_DATASETS
from metrify_assets.resources.lake import Lake

if TYPE_CHECKING:
    from metrify_assets.lifecycle.tiers import Outcome

USING = ("archive", "raw")


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
            typer.Option(help="With --using raw: only batches processed up to this time (ISO 8601, UTC)."),
        ] = None,
        keep_days: Annotated[
            int, typer.Option(help="Restored days stay hot this many days before the hot window applies.")
        ] = DEFAULT_KEEP_DAYS,
        dry_run: Annotated[bool, typer.Option(help="With --using raw: report what would change.")] = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print one JSON object as the last line.")
        ] = False,
    ) -> None:
        """Restore days to PostgreSQL. Re-run the downstream jobs for them afterwards (`metrify run`
        does so for days it ingests; the Dagster UI for any range)."""
        from metrify_assets.lifecycle import rollback
        from metrify_assets.lifecycle.restore import restore_days
        from metrify_assets.resources.build import postgres_resource
        from metrify_assets.resources.cache import open_cache

        first_day, last_day = day_range(first, last)
        if dataset not in TIERED_DATASETS:
            raise typer.BadParameter(
                f"{dataset!r} is not one of {', '.join(TIERED_DATASETS)}", param_hint="--dataset"
            )
        if using not in USING:
            raise typer.BadParameter(f"{using!r} is not one of {', '.join(USING)}", param_hint="--using")
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
                    typer.echo(to_json(summary))
                return
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as bars:
                task = bars.add_task("restoring", total=(last_day - first_day).days + 1)

                def on_day(outcome: Outcome) -> None:
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
                )
        table = Table(title=f"restore {dataset} {first_day}..{last_day}")
        for column in ("day", "outcome", "rows", "detail"):
            table.add_column(column)
        for o in outcomes:
            table.add_row(o.day.isoformat(), o.action, f"{o.rows:,}", o.detail)
        console.print(
            table if outcomes else f"no day of {dataset} in {first_day}..{last_day} has a lake copy"
        )
        restored = [o for o in outcomes if o.action == "restored"]
        if restored:
            console.print(
                f"{len(restored)} {'day is' if len(restored) == 1 else 'days are'} marked to rebuild: the next "
                "`metrify run` (or the daemon's late_days_sensor) re-materialises what derives from them "
                "(VEE, anomaly scores, enrichment, the marts)"
            )
        pending = [o for o in outcomes if o.action == "restore requested"]
        if pending:
            console.print(
                f"{len(pending)} days are being restored from the archive class: run the same command again later"
            )
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {"day": o.day.isoformat(), "action": o.action, "rows": o.rows, "detail": o.detail}
                        for o in outcomes
                    ]
                )
            )
        note_embedded_server(settings)
        if any(o.failed for o in outcomes):
            raise typer.Exit(code=1)
