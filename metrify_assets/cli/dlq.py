"""Dead letters (records quarantined at ingest): list, show, replay after a fix, or discard what no
fix will ever let in.

`metrify dlq list | show | replay | discard`.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from metrify_assets.cli.audit import cli_caller, parse_since, who
from metrify_assets.cli.console import command_console, counted, to_json
from metrify_assets.cli.db import connect, note_embedded_server
from metrify_assets.cli.options import Source, known_source
from metrify_assets.env import resolve_settings
from metrify_assets.ingestion import dead_letters
from metrify_assets.resources.lake import Lake

Reason = Annotated[
    str | None, typer.Option(help="Only records with this reason code (a prefix: `malformed:bad_type`).")
]
Batch = Annotated[str | None, typer.Option("--batch", help="Only records of this batch id.")]
Since = Annotated[
    str | None,
    typer.Option(
        help="Only records quarantined since then: 30m, 12h, 7d back, or an ISO date or time (UTC)."
    ),
]


def _selection(
    source: str | None, reason: str | None, batch_id: str | None, resolved: bool, since: str | None = None
) -> dead_letters.Selection:
    batch_ids = None if batch_id is None else (batch_id,)
    after = None if since is None else parse_since(since, datetime.now(UTC))
    return dead_letters.Selection(
        known_source(source), reason, batch_ids, include_resolved=resolved, since=after
    )


def _print_letters(
    console: Console, letters: list[dead_letters.DeadLetter], what: str, order: str = "oldest first"
) -> None:
    table = Table(title=f"{what}: {len(letters):,} shown ({order})")
    for column in ("batch_id", "#", "from", "source", "reasons", "quarantined at", "replays", "resolved by"):
        table.add_column(column)
    for d in letters:
        table.add_row(
            d.batch_id,
            str(d.record_index),
            _origin(d),
            d.source,
            d.reasons[:80],
            f"{d.quarantined_at:%Y-%m-%d %H:%M:%S}",
            str(d.replays),
            d.resolved_by or ("" if d.replayable else "(not replayable)"),
        )
    console.print(table)


def _origin(letter: dead_letters.DeadLetter) -> str:
    """Where the record came from, as a person finds it: `exports/vendor.csv line 12` (the file given to
    `metrify ingest`, the line an editor shows), `offset 57` (Kafka), or `-` (its index is all there is)."""
    parts = [p for p in (letter.source_file, letter.where) if p]
    return " ".join(parts) or "-"


def _reason_table(counts: list[tuple[str, str, int]], title: str) -> Table:
    table = Table(title=title)
    for column in ("source", "reason", "records"):
        table.add_column(column)
    for source, reason, records in counts:
        table.add_row(source, reason, f"{records:,}")
    return table


def _totals_line(records: int, replayable: int, resolved: bool) -> str:
    """What `dlq list` counts, in the words of `metrify status`: records, and of them those a replay
    could accept (the figure status shows)."""
    status = "(what `metrify status` counts)"
    if resolved:
        return (
            f"dead letters: {counted(records, 'record')}, resolved ones included, {replayable:,} waiting that a "
            f"replay could accept {status}"
        )
    return (
        f"dead letters: {counted(records, 'record')} waiting, {replayable:,} of them a replay could accept {status}, "
        f"{records - replayable:,} never (duplicates, reviewer rejections, timestamps without an offset: "
        "ingest their file again with --timezone, then discard them)"
    )


def _letter_row(letter: dead_letters.DeadLetter) -> dict[str, object]:
    return {**asdict(letter), "replayable": letter.replayable}


def register(app: typer.Typer) -> None:
    dlq_app = typer.Typer(
        help="Dead letters: records quarantined at ingest (and sent to <topic>.dlq from Kafka).",
        no_args_is_help=True,
    )

    @dlq_app.command("list")
    def list_cmd(
        source: Source = None,
        reason: Reason = None,
        batch_id: Batch = None,
        since: Since = None,
        resolved: Annotated[
            bool, typer.Option("--all", help="Include records resolved by a replay or a discard.")
        ] = False,
        limit: Annotated[int, typer.Option(min=1, help="At most this many records, newest first.")] = 50,
        as_json: Annotated[
            bool, typer.Option("--json", help="One JSON object: counts by reason, and the records.")
        ] = False,
    ) -> None:
        """Counts by reason, then the records themselves, newest first (unresolved ones, unless --all)."""
        settings = resolve_settings()
        selection = _selection(source, reason, batch_id, resolved, since)
        with connect(settings) as conn:
            records, replayable = dead_letters.totals(conn, selection)
            counts = dead_letters.reason_counts(conn, selection)
            letters = dead_letters.select(conn, selection, limit=limit, newest_first=True)
        if as_json:
            by_reason = [{"source": s, "reason": r, "records": n} for s, r, n in counts]
            rows = [{**_letter_row(d), "payload": d.payload} for d in letters]
            totals = {"records": records, "replayable": replayable}
            typer.echo(to_json({"totals": totals, "by_reason": by_reason, "records": rows}))
            return
        console = command_console()
        console.print(_totals_line(records, replayable, resolved))
        reasons = sum(n for _, _, n in counts)
        console.print(
            _reason_table(
                counts,
                f"by reason: {counted(reasons, 'reason')} over {counted(records, 'record')} "
                "(a record may have several)",
            )
        )
        _print_letters(console, letters, "dead letters", "newest first")
        note_embedded_server(settings)

    @dlq_app.command("show")
    def show_cmd(
        batch_id: Annotated[str, typer.Argument(help="Batch id of the record (see `metrify dlq list`).")],
        record_index: Annotated[int, typer.Argument(help="Its index in the batch.")],
    ) -> None:
        """One dead letter as JSON: reasons, version, replay state, and its payload (parsed when it is JSON)."""
        with connect(resolve_settings()) as conn:
            letter = dead_letters.get(conn, batch_id, record_index)
        if letter is None:
            typer.echo(f"error: no dead letter {batch_id} #{record_index}", err=True)
            raise typer.Exit(code=1)
        try:
            payload: object = orjson.loads(letter.payload)
        except orjson.JSONDecodeError:
            payload = letter.payload
        shown = {**_letter_row(letter), "payload": payload}
        typer.echo(to_json(shown, indent=2))

    @dlq_app.command("replay")
    def replay_cmd(
        source: Source = None,
        reason: Reason = None,
        batch_id: Batch = None,
        since: Since = None,
        dry_run: Annotated[bool, typer.Option(help="Only list what would be replayed.")] = False,
        materialise: Annotated[
            bool,
            typer.Option(help="Then rebuild the downstream graph for the days the accepted records touched."),
        ] = True,
    ) -> None:
        """Re-ingest the selected dead letters through the ingest path, after a fix.

        Accepted ones are upserted and their quarantine rows resolved; the rest keep their rows
        with fresh reasons. No quarantine row is added."""
        # Imported here: the ingest path, the code location and the Dagster instance would cost `list` and
        # `show`, which use none of them, several seconds.
        import pandas as pd

        from metrify_assets.cli.run import print_run_summary, stage_progress
        from metrify_assets.definitions import defs as load_defs
        from metrify_assets.ingestion import replay
        from metrify_assets.orchestration import catchup
        from metrify_assets.orchestration.instance import local_instance
        from metrify_assets.resources.cache import open_cache

        settings = resolve_settings()
        selection = _selection(source, reason, batch_id, resolved=False, since=since)
        console = command_console()
        with connect(settings) as conn:
            letters = dead_letters.select(conn, selection)
            replayable = [d for d in letters if d.replayable]
            skipped = len(letters) - len(replayable)
            console.print(
                f"{len(replayable):,} dead letters to replay"
                + (f" ({skipped:,} not replayable: duplicates, reviewer rejections)" if skipped else "")
            )
            if dry_run:
                _print_letters(console, replayable, "would replay")
            if dry_run or not replayable:
                return
            lake = Lake(settings.lake_url)
            cache = open_cache(settings)
            now = pd.Timestamp.now(tz="UTC")
            results = []
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console) as progress:
                task = progress.add_task("replaying", total=len(replayable))
                for chunk in replay.chunks(replayable):
                    result = replay.replay(
                        conn,
                        lake,
                        chunk,
                        now,
                        settings.quality_alert_threshold,
                        cache=cache,
                        caller=cli_caller(who()),
                    )
                    results.append(result)
                    progress.update(task, advance=len(chunk), description=f"replaying ({result.batch_id})")
        table = Table(title="metrify dlq replay")
        for column in ("replay batch", "source", "replayed", "accepted", "still quarantined"):
            table.add_column(column)
        for r in results:
            table.add_row(
                r.batch_id, r.source, f"{r.replayed:,}", f"{r.accepted:,}", f"{r.still_quarantined:,}"
            )
        console.print(table)
        days = catchup.touched_days(settings, [r.batch_id for r in results if r.accepted]).days
        if materialise and days:
            with stage_progress(console) as progress:
                done = catchup.materialise_days(
                    load_defs(), local_instance(settings), settings, days, progress, trigger="dlq-replay"
                )
            note_embedded_server(settings)  # before the summary, which exits 1 when a run failed
            print_run_summary(console, done)
            return
        if days:
            console.print(f"{len(days)} days touched; `--materialise` (or late_days_sensor) rebuilds them")
        note_embedded_server(settings)

    @dlq_app.command("discard")
    def discard_cmd(
        note: Annotated[
            str, typer.Option("--note", help="Why no replay will ever accept them; stored and audit-logged.")
        ],
        source: Source = None,
        reason: Reason = None,
        batch_id: Batch = None,
        since: Since = None,
        by: Annotated[
            str | None,
            typer.Option("--by", help="Who discards them (a name or e-mail); default: the OS user."),
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Only count what would be discarded.")
        ] = False,
        yes: Annotated[bool, typer.Option("--yes", help="Discard without asking for confirmation.")] = False,
    ) -> None:
        """Close dead letters no fix will ever let in (junk, a test producer's output): after a count
        and a confirmation (or --yes), the selected unresolved ones are resolved as discarded.

        They are kept for the quarantine's retention (`dlq list --all` shows them, `discarded by ...`)
        but wait no more: `metrify status`, the metrify_dlq_records gauge and `dlq replay` leave them
        out. Each source's discard is an entry of the audit log (dlq.discard). The filters are those of
        `dlq list` and `dlq replay`; at least one is required."""
        if not note.strip() or "\x00" in note:
            raise typer.BadParameter("say why they are discarded (a text without NUL)", param_hint="--note")
        if by is not None and (not by.strip() or "\x00" in by):
            raise typer.BadParameter("a name or e-mail (without NUL)", param_hint="--by")
        if source is None and reason is None and batch_id is None and since is None:
            raise typer.BadParameter(
                "name the dead letters to discard: --source, --reason, --batch or --since (or several)"
            )
        actor = (by or who()).strip()
        selection = _selection(source, reason, batch_id, resolved=False, since=since)
        filters = {
            k: v
            for k, v in {
                "source": selection.source,
                "reason": reason,
                "batch": batch_id,
                "since": selection.since.isoformat() if selection.since else None,
            }.items()
            if v is not None
        }
        settings = resolve_settings()
        console = command_console()
        with connect(settings) as conn:
            letters = dead_letters.keys(conn, selection)
            counts = dead_letters.reason_counts(conn, selection)
            described = ", ".join(f"{k} {v}" for k, v in filters.items())
            plural = "" if len(letters) == 1 else "s"
            console.print(
                f"{'would discard' if dry_run else 'to discard'}: {len(letters):,} dead letter{plural} ({described})"
            )
            if letters:
                console.print(_reason_table(counts, "by reason"))
            if dry_run or not letters:
                return
            if not yes:
                if not sys.stdin.isatty():
                    raise typer.BadParameter(
                        "pass --yes to discard them without a prompt", param_hint="--yes"
                    )
                typer.confirm(f"Discard {len(letters):,} dead letter{plural}?", abort=True, err=True)
            done = dead_letters.discard(conn, letters, note.strip(), cli_caller(actor), filters)
        total = sum(done.values())
        per_source = ", ".join(f"{s} {n:,}" for s, n in sorted(done.items()))
        console.print(
            f"discarded {total:,} dead letter{'' if total == 1 else 's'}"
            + (f" ({per_source})" if per_source else "")
            + f" as {actor}; kept for the quarantine's retention (`metrify dlq list --all` shows them)"
        )
        if total < len(letters):
            console.print(f"{len(letters) - total:,} were resolved meanwhile (a replay), left as they were")
        note_embedded_server(settings)

    app.add_typer(dlq_app, name="dlq")
