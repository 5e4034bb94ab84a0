"""Legal holds: data no retention rule may delete, move or expire until released.

`metrify holds add | list | release | unlock`: legal holds on a scope of data (docs/lifecycle.md).

A hold is recorded in `ops.legal_holds` with its reason and author, and the lake objects of its scope
get an S3 Object Lock legal hold. While it stands no lifecycle rule deletes, moves or expires that data.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from metrify_assets.cli.audit import cli_caller, who
from metrify_assets.cli.console import command_console
from metrify_assets.cli.db import connect, note_embedded_server
from metrify_assets.cli.options import day_range
from metrify_assets.env import resolve_settings
from metrify_assets.lifecycle import holds, state
from metrify_assets.lifecycle.policy import DATASETS
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.known import METER, known


def _hold_row(hold: holds.Hold) -> dict[str, object]:
    return {
        "hold_id": hold.hold_id,
        "dataset": hold.dataset,
        "meter_id": hold.meter_id,
        "first_day": hold.first_day.isoformat(),
        "last_day": hold.last_day.isoformat(),
        "until_released": hold.until_released,
        "reason": hold.reason,
        "author": hold.author,
        "created_at": hold.created_at.isoformat(),
        "objects_locked": hold.objects_locked,
        "released_at": hold.released_at.isoformat() if hold.released_at else None,
        "released_by": hold.released_by,
    }


def register(app: typer.Typer) -> None:
    holds_app = typer.Typer(
        help="Legal holds: data no retention rule may delete, move or expire until released.",
        no_args_is_help=True,
    )

    @holds_app.command("add")
    def add_cmd(
        reason: Annotated[str, typer.Option(help="Why the data is held (a case or request reference).")],
        first: Annotated[
            str,
            typer.Option(
                "--from",
                help=f"First day held (YYYY-MM-DD), from {holds.EARLIEST_DAY} to {holds.HORIZON_DAYS} days past today.",
            ),
        ],
        last: Annotated[
            str | None,
            typer.Option(
                "--to",
                help=f"Last day held, at most {holds.HORIZON_DAYS} days past today; default: the first.",
            ),
        ] = None,
        until_released: Annotated[
            bool,
            typer.Option(
                "--until-released",
                help="Hold every day from --from on, data yet to come included, until the hold is released "
                "(instead of --to).",
            ),
        ] = False,
        dataset: Annotated[
            str, typer.Option(help=f"{holds.ALL} or one of {', '.join(DATASETS)}.")
        ] = holds.ALL,
        meter: Annotated[
            str | None, typer.Option(help="Only this meter's readings (meter_readings).")
        ] = None,
        by: Annotated[
            str | None, typer.Option("--by", help="Who places the hold; default: the OS user.")
        ] = None,
        unknown_meter: Annotated[
            bool,
            typer.Option(
                "--allow-unknown-meter",
                help="Hold --meter although the store has no trace of it (data expected later).",
            ),
        ] = False,
    ) -> None:
        """Place a hold, and lock the lake objects of its scope (S3 Object Lock legal hold). Exit status 2
        when the scope is not one a hold can cover (unknown dataset, days before 2000 or beyond the
        horizon, --to with --until-released)."""
        if until_released and last is not None:
            raise typer.BadParameter(
                "cannot be given with --until-released: a hold until released has no last day",
                param_hint="--to",
            )
        first_day, last_day = day_range(first, last)
        held_to = None if until_released else last_day
        try:
            holds.validate_scope(dataset, first_day, held_to, meter, datetime.now(UTC).date())
            settings = resolve_settings()  # the scope is checked before any connection
            lake = Lake(settings.lake_url)
            with connect(settings) as conn:
                if meter is not None and not unknown_meter and not known(conn, METER, meter):
                    # A mistyped id would still lock the days' lake objects, which a lock can keep for good.
                    typer.echo(
                        f"error: {METER.unknown_message(meter)}; check the id, or pass --allow-unknown-meter",
                        err=True,
                    )
                    raise typer.Exit(code=1)
                author = by or who()
                hold = holds.add(
                    conn,
                    dataset,
                    first_day,
                    held_to,
                    reason,
                    author,
                    meter,
                    caller=cli_caller(author),
                )
                state.log(conn, dataset, first_day, "hold", f"hold {hold.hold_id}: {hold.scope}: {reason}")
                conn.commit()  # the recorded hold is what every lifecycle step obeys: it stands from now
                try:
                    locked = holds.lock_objects(
                        lake,
                        holds.scope_keys(lake, dataset, hold.first_day, hold.last_day, hold.meter_id),
                        on=True,
                    )
                    lock_error = None
                except Exception as err:  # noqa: BLE001 - reported: the hold stands, its lake locks do not
                    locked, lock_error = 0, f"{type(err).__name__}: {err}"
                conn.execute(
                    "UPDATE ops.legal_holds SET objects_locked = %s WHERE hold_id = %s",
                    (locked, hold.hold_id),
                )
                conn.commit()
        except holds.HoldError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
        typer.echo(
            f"hold {hold.hold_id} placed on {hold.scope} by {hold.author}; {locked} lake objects locked"
        )
        note_embedded_server(settings)
        if lock_error:
            typer.echo(
                f"warning: the hold is recorded and Metrify obeys it, but its lake objects could not be locked "
                f"({lock_error}); S3 Object Lock needs a bucket created with object lock",
                err=True,
            )
            raise typer.Exit(code=1)

    @holds_app.command("list")
    def list_cmd(
        include_released: Annotated[bool, typer.Option("--all", help="Released holds too.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
    ) -> None:
        """List the holds (active ones unless --all)."""
        settings = resolve_settings()
        with connect(settings) as conn:
            found = holds.list_holds(conn, include_released)
        if as_json:
            typer.echo(json.dumps([_hold_row(h) for h in found]))
            return
        table = Table(title="legal holds" + (" (all)" if include_released else " (active)"))
        for column in ("id", "scope", "reason", "by", "placed", "objects", "released"):
            table.add_column(column)
        for h in found:
            released = f"{h.released_at:%Y-%m-%d} by {h.released_by}" if h.released_at else ""
            table.add_row(
                str(h.hold_id),
                h.scope,
                h.reason,
                h.author,
                f"{h.created_at:%Y-%m-%d %H:%M}",
                str(h.objects_locked),
                released,
            )
        command_console().print(table if found else "no holds")

    @holds_app.command("release")
    def release_cmd(
        hold_id: Annotated[int, typer.Argument(help="The hold's id (first column of `metrify holds list`).")],
        note: Annotated[str | None, typer.Option(help="Why it is released; stored with the hold.")] = None,
        by: Annotated[str | None, typer.Option("--by", help="Who releases it; default: the OS user.")] = None,
    ) -> None:
        """Release a hold and lift its locks (objects another hold covers stay locked); the next
        retention run may then proceed with that data."""
        settings = resolve_settings()
        lake = Lake(settings.lake_url)
        try:
            with connect(settings) as conn:
                author = by or who()
                hold = holds.release(conn, hold_id, author, note, caller=cli_caller(author))
                state.log(conn, hold.dataset, hold.first_day, "release", f"hold {hold_id}: {note or ''}")
                conn.commit()
                try:
                    unlocked, unlock_error = holds.unlock_objects(conn, lake, hold), None
                except Exception as err:  # noqa: BLE001 - reported: released, some lake locks remain
                    unlocked, unlock_error = 0, f"{type(err).__name__}: {err}"
        except holds.HoldError as err:  # no such hold, or released already: exit 1, as other lookups
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=1) from err
        typer.echo(
            f"hold {hold_id} on {hold.scope} released by {hold.released_by}; {unlocked} lake objects unlocked"
        )
        if unlock_error:
            typer.echo(
                f"warning: released, but lifting its lake locks failed ({unlock_error}); "
                f"retry with `metrify holds unlock {hold_id}`",
                err=True,
            )
            raise typer.Exit(code=1)

    @holds_app.command("unlock")
    def unlock_cmd(
        hold_id: Annotated[int, typer.Argument(help="A released hold's id.")],
    ) -> None:
        """Lift the lake locks of a released hold again (after `release` could not lift them all)."""
        settings = resolve_settings()
        with connect(settings) as conn:
            hold = holds.get(conn, hold_id)
            if hold is None or hold.active:
                typer.echo(
                    f"error: hold {hold_id} {'does not exist' if hold is None else 'is not released'}",
                    err=True,
                )
                raise typer.Exit(code=1)
            unlocked = holds.unlock_objects(conn, lake=Lake(settings.lake_url), hold=hold)
            cli_caller(who()).record(conn, "hold.unlock", f"hold:{hold_id}", {"scope": hold.scope}, unlocked)
        typer.echo(f"{unlocked} lake objects of hold {hold_id} unlocked")

    app.add_typer(holds_app, name="holds")
