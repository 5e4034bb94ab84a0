"""Review flagged records: list, inspect, approve (keep) and reject (quarantine).

`metrify review list | show | approve | reject`, on `ops.review_queue`.

Items are named by their batch and record index (`BATCH_ID RECORD_INDEX`, as `list` prints them).
Decisions need `--by` (who) and `--reason` (why); both are stored with the queue row, and so is the
OS account that ran the command (`decided_account`: `--by` is typed, the login is not). `approve` and
`reject` without an item decide every pending item a filter selects (`--meter`, `--flag`, `--source`,
`--day` or `--from`/`--to`), after a count and a confirmation (or `--yes`).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from metrify_assets.cli.audit import cli_caller
from metrify_assets.cli.console import command_console, counted, to_json
from metrify_assets.cli.db import connect
from metrify_assets.cli.options import Source, known_source
from metrify_assets.env import resolve_settings
from metrify_assets.quality import review, review_context

By = Annotated[
    str,
    typer.Option(
        "--by",
        help="Who decides (a name or e-mail), stored with the decision beside the OS account running it.",
    ),
]
Reason = Annotated[str, typer.Option("--reason", help="Why, stored with the decision.")]
BatchId = Annotated[str, typer.Argument(help="The item's batch_id (first column of `review list`).")]
RecordIndex = Annotated[int, typer.Argument(help="The item's record index within its batch.")]
# A decision's item, or none with a filter (a bulk decision).
MaybeBatchId = Annotated[
    str | None, typer.Argument(help="The item's batch_id; none: every pending item the filter selects.")
]
MaybeIndex = Annotated[int | None, typer.Argument(help="The item's record index within its batch.")]
Meter = Annotated[str | None, typer.Option("--meter", help="Bulk: this meter's readings, e.g. MTR-000023.")]
Flag = Annotated[
    str | None, typer.Option("--flag", help="Bulk: items flagged with this reason code (zero_run, ...).")
]
Day = Annotated[
    datetime | None,
    typer.Option("--day", formats=["%Y-%m-%d"], help="Bulk: meter readings of this local day."),
]
From = Annotated[
    datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="Bulk: from this local day.")
]
To = Annotated[
    datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="Bulk: up to this local day (included).")
]
Yes = Annotated[bool, typer.Option("--yes", help="Bulk: decide without asking for confirmation.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Bulk: count what would be decided, decide nothing.")]


# A decision that changed data stamped its day for rebuild; VEE took it at once, the rest does not yet.
REBUILD_NOTE = (
    "marts and quality report: not yet; the next `metrify run` (or the daemon's late_days_sensor) "
    "rebuilds the day with it"
)


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
            if isinstance(err, review.UnknownItemError):
                typer.echo(
                    "the items and their BATCH_ID RECORD_INDEX: metrify review list (--source, --flag, --meter "
                    "narrow it)",
                    err=True,
                )
            if isinstance(err, review.AlreadyDecidedError):  # a decision is taken back, not overwritten
                item_args = f"{shlex.quote(batch_id)} {record_index}"
                typer.echo(
                    f"to decide it again, take the decision back first: metrify review reopen {item_args} "
                    '--by NAME --reason "..."',
                    err=True,
                )
            raise typer.Exit(code=1) from err
    item = decided.item
    status = "reopened, pending again" if action == "reopen" else item.status
    typer.echo(f"{status}: {item.source} {item.record_key} ({item.batch_id} #{item.record_index})")
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
        typer.echo(f"VEE: the interval is now {now}; {counted(rows, 'audit row')} written")
    if item.status != review.SUPERSEDED and decided.vee_skipped is None:
        typer.echo(REBUILD_NOTE)


def _selection(
    source: str | None,
    flag: str | None,
    meter: str | None,
    day: datetime | None,
    first: datetime | None,
    last: datetime | None,
) -> review.Selection:
    """A bulk decision's filter from the options; a usage error for none, or --day with --from/--to."""
    known_source(source)
    known_reason(flag, "--flag")
    if meter is not None and "\x00" in meter:
        raise typer.BadParameter("a meter id holds no NUL character", param_hint="--meter")
    if day is not None and (first is not None or last is not None):
        raise typer.BadParameter("--day or --from/--to, not both", param_hint="--day")
    lower, upper = (day, day) if day is not None else (first, last)
    start: date | None = lower.date() if lower is not None else None
    end: date | None = upper.date() if upper is not None else None
    selection = review.Selection(source=source, reason=flag, meter=meter, first=start, last=end)
    if selection.empty():
        raise typer.BadParameter(
            "name an item (BATCH_ID RECORD_INDEX) or a filter for a bulk decision: "
            "--meter, --flag, --source, --day or --from/--to"
        )
    return selection


def _bulk(action: str, selection: review.Selection, by: str, reason: str, yes: bool, dry_run: bool) -> None:
    """Decide every pending item `selection` takes, as one decision each (`_decide`'s), with one VEE
    re-run per meter-day at the end."""
    from metrify_assets.meters.vee import review as vee_review
    from metrify_assets.resources.cache import open_cache

    try:
        review.check_decision(by, reason)
    except review.ReviewError as err:
        raise typer.BadParameter(str(err)) from err
    settings = resolve_settings()
    console = command_console(stderr=True)
    with connect(settings) as conn:
        try:
            items = review.select_pending(conn, selection)
        except review.ReviewError as err:
            raise typer.BadParameter(str(err)) from err
        meter_days = {(i.meter, i.day) for i in items if i.meter is not None}
        verb = "approve" if action == "approve" else "reject"
        meters = len({m for m, _ in meter_days})
        typer.echo(
            f"{'would ' if dry_run else ''}{verb} {counted(len(items), 'pending item')} "
            f"({selection.describe()}): {counted(meters, 'meter')}, {counted(len(meter_days), 'meter-day')}"
        )
        if dry_run or not items:
            return
        if not yes:
            if not sys.stdin.isatty():
                typer.echo(f"error: no terminal to confirm on: add --yes to {verb} them", err=True)
                raise typer.Exit(code=2)
            typer.confirm(f"{verb.capitalize()} {len(items):,} items?", abort=True, err=True)
        cache = open_cache(settings)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(f"{verb}", total=len(items))
            done = vee_review.decide_many(
                conn,
                action,
                items,
                by,
                reason,
                cache=cache,
                caller=cli_caller(by),
                step=lambda: progress.advance(task),
            )
    status = "approved" if action == "approve" else "rejected"
    typer.echo(
        f"{status} {done.decided:,} of {done.selected:,}; skipped {done.already_decided:,} already decided, "
        f"{done.superseded:,} superseded (closed, nothing changed), {len(done.refused):,} refused"
    )
    for batch_id, index, error in done.refused:
        typer.echo(f"refused: {batch_id} #{index}: {error}", err=True)
    if done.archived:
        typer.echo(f"VEE: not re-run for {done.archived:,} approved readings of archived days")
    runs = sum(len(m) for m in done.meter_days.values())
    typer.echo(
        f"VEE: re-ran {counted(runs, 'meter-day')}; {counted(done.vee_audit_rows, 'audit row')} written"
    )
    if done.decided > done.archived:
        typer.echo(REBUILD_NOTE)
    for error in done.vee_errors:
        typer.echo(f"error: {error}", err=True)
    if done.vee_errors:
        raise typer.Exit(code=1)


def known_reason(reason: str | None, option: str = "--reason") -> str | None:
    """`reason` if it is a flag reason of the rule catalogue (or None), the reasons a flagged record
    is queued with (a reject reason rejects it); a usage error (exit 2) listing them otherwise."""
    if reason is None:
        return None
    from metrify_assets.quality.rules import FLAG_REASONS  # pandas: only when --reason is given

    if reason not in FLAG_REASONS:
        raise typer.BadParameter(
            f"unknown reason {reason!r}; one of {', '.join(FLAG_REASONS)}", param_hint=option
        )
    return reason


def _shown(offset: int, count: int) -> str:
    """Which items of the list a page holds, counted from 1: "items 51-100", "item 7", "no items at --offset 80"."""
    if count > 1:
        return f"items {offset + 1:,}-{offset + count:,}"
    if count == 1:
        return f"item {offset + 1:,}"
    return f"no items at --offset {offset:,}" if offset else "no items"


def _one_or_many(
    action: str,
    by: str,
    reason: str,
    batch_id: str | None,
    record_index: int | None,
    meter: str | None,
    flag: str | None,
    source: str | None,
    day: datetime | None,
    first: datetime | None,
    last: datetime | None,
    yes: bool,
    dry_run: bool,
) -> None:
    """One item (BATCH_ID RECORD_INDEX) or, with no item, a bulk decision over a filter."""
    filtered = any(v is not None for v in (meter, flag, source, day, first, last))
    if batch_id is not None:
        if record_index is None:
            raise typer.BadParameter("an item is BATCH_ID RECORD_INDEX", param_hint="RECORD_INDEX")
        if filtered:
            raise typer.BadParameter("an item (BATCH_ID RECORD_INDEX) or a filter, not both")
        if yes or dry_run:
            flag = "--dry-run" if dry_run else "--yes"
            raise typer.BadParameter(
                f"{flag} is for a bulk decision (a filter), not one item", param_hint=flag
            )
        _decide(action, batch_id, record_index, by, reason)
        return
    _bulk(action, _selection(source, flag, meter, day, first, last), by, reason, yes, dry_run)


def _utc(at: str) -> str:
    """An ISO time as the neighbours table shows it: "2026-03-29 00:15" in UTC."""
    return datetime.fromisoformat(at).astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _decision_hint(shown: dict[str, Any], value: str) -> list[str]:
    """What deciding the item does and the commands that do it (nothing to do for a decided one)."""
    item, vee = shown["item"], shown["context"]["vee"]
    if item["status"] != "pending":
        when = item["decided_at"].isoformat(timespec="seconds") if item["decided_at"] else "-"
        return [
            f"decided: {item['status']} by {item['decided_by']} (account {item['decided_account'] or 'unknown'}) "
            f"at {when} ({item['decision_note']})",
            *(
                [
                    f"  metrify review reopen {shlex.quote(item['batch_id'])} {item['record_index']} "
                    '--by NAME --reason "..."   take it back: pending again'
                ]
                if item["status"] in ("approved", "rejected")
                else []
            ),
        ]
    command = f"metrify review {{}} {shlex.quote(item['batch_id'])} {item['record_index']}"
    approve, reject = (command.format(a) + ' --by NAME --reason "..."' for a in ("approve", "reject "))
    if shown["not_the_flagged_version"] and shown["stored_row"] is not None:
        return [
            "a newer version replaced the flagged one: either decision closes the item as superseded and "
            "changes nothing",
            f"  {approve}",
        ]
    if shown["stored_row"] is None:
        return [
            "no version is stored (its day was archived): approve records the decision and changes nothing "
            "stored; reject is refused until `metrify restore` brings the day back",
            f"  {approve}",
        ]
    if item["source"] != "meter_readings":
        return [f"  {approve}   keep {value} as stored", f"  {reject}   quarantine it"]
    bills = ""
    if vee is not None and vee["energy_kwh"] is not None and vee["status"] != "actual":
        bills = f" (VEE holds {vee['status']} {review_context.num(vee['energy_kwh'])} kWh now)"
    return [
        f"  {approve}   keep {value}: the billing series takes it as an edit by you{bills}",
        f"  {reject}   quarantine it: VEE estimates the interval as an edit by you",
    ]


def _history_lines(item: dict[str, Any], history: list[dict[str, Any]]) -> list[str]:
    """An item's earlier decisions, where one was taken back (a pending item that was decided before
    looked untouched), with the audit command that lists them; nothing for an item decided once."""
    if not any(entry["action"] == "reopen" for entry in history):
        return []
    lines = ["history (audit log, oldest first):"]
    for entry in history:
        at = datetime.fromisoformat(entry["at"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        verb = {"approve": "approved", "reject": "rejected", "reopen": "reopened"}.get(
            entry["action"], entry["action"]
        )
        if entry["action"] != "reopen" and entry["status"] == review.SUPERSEDED:
            verb = "closed as superseded"
        took_back = f", taking back: {entry['reopened']}" if entry["action"] == "reopen" else ""
        lines.append(
            f"  {at} UTC {verb} by {entry['actor']} (account {entry['account'] or 'unknown'}, "
            f"{entry['channel']}{took_back}): {entry['note']}"
        )
    target = review_context.audit_target(item["batch_id"], item["record_index"])
    lines.append(f"  metrify audit --target {shlex.quote(target)}   the entries in full")
    return lines


def _print_item(shown: dict[str, Any]) -> None:
    """`review show` for a reviewer: the item, why it was flagged, its neighbours, VEE, the decision."""
    item, context = shown["item"], shown["context"]
    console = command_console()

    def out(text: Any) -> None:  # text as it is (no markup, no wrap: a reviewer copies commands from it)
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    stored = shown["stored_row"] is not None and not shown["not_the_flagged_version"]
    flagged = shown["stored_row"] if stored else shown["quarantined_row"]
    value = review_context.describe_values(item["source"], item["reasons"], flagged) or "not stored"
    flagged_at = item["flagged_at"].isoformat(timespec="seconds")
    out(
        f"{item['batch_id']} #{item['record_index']}: {item['source']} {item['record_key']}, "
        f"{item['status']} (flagged {flagged_at})"
    )
    out(f"flagged value: {value}")
    if shown["not_the_flagged_version"]:
        out(f"note: {shown['not_the_flagged_version']}")
    if shown["quarantined_row"] is not None:
        out("rejected: the flagged row is in ops.quarantine (--json: quarantined_row)")
    out("why flagged:")
    for reason in context["why"]:
        out(f"  {reason['text']}")
    columns = review_context.measures(item["source"], item["reasons"])
    meter = item["source"] == "meter_readings"
    table = Table(
        title=f"neighbours of {item['record_key'].split('|')[0]} (> the flagged one)", title_justify="left"
    )
    for name in ("", "start (UTC)", *(review_context.UNITS[c] for c in columns), "flags", "batch"):
        table.add_column(name, justify="right" if name in review_context.UNITS.values() else "left")
    if meter:
        table.add_column("VEE")
    for row in context["neighbours"]:
        cells = [
            ">" if row["flagged"] else "",
            _utc(row["at"]),
            *(review_context.num(row.get(c)) for c in columns),
            row.get("quality_flags") or "",
            (row.get("batch_id") or "") if row["stored"] else "(not stored)",
        ]
        if meter:
            vee = (
                f"{row['vee_status']} {review_context.num(row['vee_kwh'])}" if row.get("vee_status") else "-"
            )
            cells.append(vee)
        table.add_row(*cells, style="bold" if row["flagged"] else None)
    if len(context["neighbours"]) > 1:
        out(table)
    else:
        owner = {"meter_readings": "meter", "grid_status": "node"}.get(item["source"], "station")
        out(f"neighbours: none stored for this {owner} around it")
    if meter:
        out(f"VEE (billing series): {review_context.vee_words(context['vee'])}")
    for line in _history_lines(item, context["history"]):
        out(line)
    if item["status"] == "pending":
        out("to decide:")
    for line in _decision_hint(shown, value):
        out(line)


# The list's caption when a page holds a pending item whose flagged version a newer one replaced.
REPLACED_NOTE = (
    "pending (replaced): a newer version of the record is stored; a decision closes the item as "
    "superseded, changing nothing (review show names the batch)"
)

BULK_HELP = (
    "Without an item: every pending item the filter selects (--meter, --flag, --source, --day or\n"
    "--from/--to), after a count (--dry-run: only the count) and a confirmation (or --yes); each decided\n"
    "as one item is, VEE re-run once per meter-day at the end. An item decided meanwhile is skipped."
)


def _decision_command(action: str) -> Callable[..., None]:
    """`review approve` or `review reject`: one item, or a bulk decision over a filter."""

    def command(
        by: By,
        reason: Reason,
        batch_id: MaybeBatchId = None,
        record_index: MaybeIndex = None,
        meter: Meter = None,
        flag: Flag = None,
        source: Source = None,
        day: Day = None,
        first: From = None,
        last: To = None,
        yes: Yes = False,
        dry_run: DryRun = False,
    ) -> None:
        _one_or_many(
            action, by, reason, batch_id, record_index, meter, flag, source, day, first, last, yes, dry_run
        )

    command.__name__ = f"{action}_cmd"
    return command


def register(app: typer.Typer) -> None:
    review_app = typer.Typer(
        help="Review flagged records: approve keeps them, reject quarantines them, reopen takes a decision back."
    )

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
        """List review items, oldest first, and how many match in all; --offset pages past --limit. A pending
        item whose flagged version a newer one replaced shows as `pending (replaced)` (--json:
        `replaced_by`, that version's batch): a decision on it closes it as superseded. `decided by` is
        the reviewer as named (--by; the API token's subject), `account` who was authenticated: the OS
        user that ran the command, the token's subject (`unknown` for a decision made before it was
        recorded)."""
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
            values = review_context.flagged_values(conn, items)
            replaced = review_context.replaced_by(conn, items)
        if as_json:
            typer.echo(
                to_json(
                    [
                        {
                            **asdict(i),
                            "value": values.get((i.batch_id, i.record_index)),
                            "replaced_by": replaced.get((i.batch_id, i.record_index)),
                        }
                        for i in items
                    ]
                )
            )
            return
        following = offset + len(items)
        title = f"review queue ({status}{f', meter {meter}' if meter else ''}): {_shown(offset, len(items))}"
        title += f" of {total:,}"
        notes = [REPLACED_NOTE] if replaced else []
        if following < total:
            notes.append(f"next: --offset {following}")
        # min_width: a page of short rows (or none) would wrap the title to the table's width
        table = Table(title=title, caption="\n".join(notes) or None, min_width=len(title))
        columns = (
            "batch_id",
            "#",
            "source",
            "record key",
            "value",
            "reasons",
            "status",
            "decided by",
            "account",
        )
        for column in columns:
            table.add_column(column, justify="right" if column == "value" else "left")
        for i in items:
            value = values.get((i.batch_id, i.record_index))
            table.add_row(
                i.batch_id,
                str(i.record_index),
                i.source,
                i.record_key,
                review_context.describe_values(i.source, i.reasons, value) if value else "-",
                i.reasons,
                f"{i.status} (replaced)" if (i.batch_id, i.record_index) in replaced else i.status,
                i.decided_by or "",
                i.decided_account or ("unknown" if i.decided_by else ""),
            )
        command_console().print(table)

    @review_app.command("show")
    def show_cmd(
        batch_id: BatchId,
        record_index: RecordIndex,
        as_json: Annotated[
            bool, typer.Option("--json", help="All of it as JSON (what the API's item detail answers).")
        ] = False,
    ) -> None:
        """Show one item as a reviewer decides it: the flagged value and why the rule fired (its figures),
        the readings before and after it (the flagged one marked) with their VEE values, what the billing
        series holds for the interval, and the commands that decide it. Says where a newer version
        replaced the flagged one (a decision then closes the item as superseded); for a rejected item, the
        row as the rejection quarantined it. --json: the queue row, stored row and context as JSON."""
        with connect(resolve_settings()) as conn:
            try:
                shown = review.show(conn, batch_id, record_index)
            except review.ReviewError as err:
                typer.echo(f"error: {err}", err=True)
                raise typer.Exit(code=1) from err
        if as_json:
            typer.echo(to_json(shown, indent=2))
            return
        _print_item(shown)

    for action, doc in (
        (
            "approve",
            "Approve: the reading stays as stored (its quality flags kept for audit); for a meter reading, the\n"
            "billing-grade series keeps it as an edit by the reviewer (VEE re-runs its meter-day).",
        ),
        (
            "reject",
            "Reject: move the reading to quarantine (`review_rejected:<reason>`) and rebalance the ledger; for a\n"
            "meter reading, VEE re-runs its meter-day and estimates the interval as an edit by the reviewer.",
        ),
    ):
        review_app.command(action, help=f"{doc}\n\n{BULK_HELP}")(_decision_command(action))

    @review_app.command("reopen")
    def reopen_cmd(batch_id: BatchId, record_index: RecordIndex, by: By, reason: Reason) -> None:
        """Take a decision back: the item is pending again, to be decided anew. A rejected reading goes
        back into its table as it was (unless a newer version came since) and out of quarantine; for a
        meter reading, VEE re-runs its meter-day. The audit log keeps the decision and who took it back,
        and why. One item at a time."""
        _decide("reopen", batch_id, record_index, by, reason)

    app.add_typer(review_app, name="review", no_args_is_help=True)
