"""Review flagged records: list, inspect, approve (keep) and reject (quarantine).

`metrify review list | show | approve | reject`, on `ops.review_queue`.

Items are named by their batch and record index (`BATCH_ID RECORD_INDEX`, as `list` prints them).
Decisions need `--by` (who) and `--reason` (why); both are stored with the queue row.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from metrify_assets.cli.audit import cli_caller
from metrify_assets.cli.console import command_console, to_json
from metrify_assets.cli.db import connect
from metrify_assets.cli.options import Source, known_source
from metrify_assets.env import resolve_settings
from metrify_assets.ingestion import dead_letters
from metrify_assets.quality import review

By = Annotated[str, typer.Option("--by", help="Who decides (a name or e-mail), stored with the decision.")]
Reason = Annotated[str, typer.Option("--reason", help="Why, stored with the decision.")]
BatchId = Annotated[str, typer.Argument(help="The item's batch_id (first column of `review list`).")]
RecordIndex = Annotated[int, typer.Argument(help="The item's record index within its batch.")]


def _decide(action: str, batch_id: str, record_index: int, by: str, reason: str) -> None:
    # Imported here: VEE (pandas) and the Redis client would cost `list` and `show`, which need
    # neither, over a second.
    from metrify_assets.meters.vee import review as vee_review
    from metrify_assets.resources.cache import open_cache

    settings = resolve_settings()
    cache = open_cache(settings)  # kept coherent after the decision commits
    caller = cli_caller(by)  # the decision and its VEE edit are in the audit log as --by
    with connect(settings) as conn:
        try:
            decided = vee_review.decide(
                conn, action, batch_id, record_index, by, reason, cache=cache, caller=caller
            )
        except review.ReviewError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=1) from err
    item = decided.item
    typer.echo(f"{item.status}: {item.source} {item.record_key} ({item.batch_id} #{item.record_index})")
    if item.status == review.SUPERSEDED:
        typer.echo(
            f"{item.decision_note}; nothing changed (a newer version is reviewed on its own if flagged)"
        )
    if decided.vee_skipped is not None:
        typer.echo(f"VEE: {decided.vee_skipped}")
    if decided.vee_error is not None:
        typer.echo(f"error: {decided.vee_error}", err=True)
        raise typer.Exit(code=1)
    if decided.vee is not None:  # the decision became an edit of the billing-grade series, with its author
        now = f"{decided.vee_status} ({decided.vee_method})" if decided.vee_status else "not in a day"
        rows = decided.vee.audit_rows
        typer.echo(f"VEE: the interval is now {now}; {rows} audit row{'' if rows == 1 else 's'} written")


def known_reason(reason: str | None) -> str | None:
    """`reason` if it is a flag reason of the rule catalogue (or None), the reasons a flagged record
    is queued with (a reject reason rejects it); a usage error (exit 2) listing them otherwise."""
    if reason is None:
        return None
    from metrify_assets.quality.rules import FLAG_REASONS  # pandas: only when --reason is given

    if reason not in FLAG_REASONS:
        raise typer.BadParameter(
            f"unknown reason {reason!r}; one of {', '.join(FLAG_REASONS)}", param_hint="--reason"
        )
    return reason


def _shown(offset: int, count: int) -> str:
    """Which items of the list a page holds, counted from 1: "items 51-100", "item 7", "no items at --offset 80"."""
    if count > 1:
        return f"items {offset + 1:,}-{offset + count:,}"
    if count == 1:
        return f"item {offset + 1:,}"
    return f"no items at --offset {offset:,}" if offset else "no items"


def register(app: typer.Typer) -> None:
    review_app = typer.Typer(help="Review flagged records: approve keeps them, reject quarantines them.")

    @review_app.command("list")
    def list_cmd(
        status: Annotated[
            str, typer.Option(help="pending, approved, rejected, superseded or all.")
        ] = "pending",
        source: Source = None,
        reason: Annotated[
            str | None, typer.Option(help="Only items with this reason code (spike, zero_run, ...).")
        ] = None,
        meter: Annotated[
            str | None,
            typer.Option(help="Only this meter's readings (meter_readings items), e.g. MTR-000023."),
        ] = None,
        limit: Annotated[int, typer.Option(min=1, help="At most this many items, oldest first.")] = 50,
        offset: Annotated[
            int,
            typer.Option(
                min=0, help="Skip the first N matching items, oldest first (--offset 50: the second 50)."
            ),
        ] = 0,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON array of the items.")] = False,
    ) -> None:
        """List review items, oldest first, and how many match in all; --offset pages past --limit."""
        known_source(source)
        known_reason(reason)
        if meter is not None and "\x00" in meter:  # as the API's 422: PostgreSQL text holds no NUL
            raise typer.BadParameter("a meter id holds no NUL character", param_hint="--meter")
        wanted = None if status == "all" else status
        with connect(resolve_settings()) as conn:
            try:
                items = review.list_items(conn, wanted, source, reason, limit, meter=meter, offset=offset)
                total = review.count_items(conn, wanted, source, reason, meter=meter)
            except review.ReviewError as err:
                raise typer.BadParameter(str(err)) from err
        if as_json:
            typer.echo(to_json([asdict(i) for i in items]))
            return
        following = offset + len(items)
        title = f"review queue ({status}{f', meter {meter}' if meter else ''}): {_shown(offset, len(items))}"
        title += f" of {total:,}"
        # min_width: a page of short rows (or none) would wrap the title to the table's width
        table = Table(
            title=title,
            caption=f"next: --offset {following}" if following < total else None,
            min_width=len(title),
        )
        for column in ("batch_id", "#", "source", "record key", "reasons", "status", "decided by"):
            table.add_column(column)
        for i in items:
            table.add_row(
                i.batch_id,
                str(i.record_index),
                i.source,
                i.record_key,
                i.reasons,
                i.status,
                i.decided_by or "",
            )
        command_console().print(table)

    @review_app.command("show")
    def show_cmd(batch_id: BatchId, record_index: RecordIndex) -> None:
        """Show one item: its queue row and the row stored under its key (JSON), with why that row is not
        the flagged version where a newer one replaced it (a decision then closes the item as superseded);
        for a rejected item, the flagged row as the rejection quarantined it."""
        with connect(resolve_settings()) as conn:
            try:
                item = review.get_item(conn, batch_id, record_index)
            except review.ReviewError as err:
                typer.echo(f"error: {err}", err=True)
                raise typer.Exit(code=1) from err
            stored, gone = review.flagged_version(conn, item)
            letter = dead_letters.get(conn, batch_id, record_index) if item.status == "rejected" else None
        shown = {
            "item": item.__dict__,
            "stored_row": stored,
            "not_the_flagged_version": None if letter else gone,
            "quarantined_row": json.loads(letter.payload)
            if letter
            else None,  # a reject writes the row as JSON
        }
        typer.echo(to_json(shown, indent=2))

    @review_app.command("approve")
    def approve_cmd(batch_id: BatchId, record_index: RecordIndex, by: By, reason: Reason) -> None:
        """Approve: the reading stays as stored (its quality flags kept for audit); for a meter reading, the
        billing-grade series keeps it as an edit by the reviewer (VEE re-runs its meter-day)."""
        _decide("approve", batch_id, record_index, by, reason)

    @review_app.command("reject")
    def reject_cmd(batch_id: BatchId, record_index: RecordIndex, by: By, reason: Reason) -> None:
        """Reject: move the reading to quarantine (`review_rejected:<reason>`) and rebalance the ledger; for a
        meter reading, VEE re-runs its meter-day and estimates the interval as an edit by the reviewer."""
        _decide("reject", batch_id, record_index, by, reason)

    app.add_typer(review_app, name="review", no_args_is_help=True)
