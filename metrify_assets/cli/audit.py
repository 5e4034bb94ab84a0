"""The audit log, newest first: who changed data or its fate, what, when, from where, how many rows.

`metrify audit` lists `ops.audit_log` (docs/operations.md#audit-log). Also `cli_caller`, how every
command that changes data names its actor for that log (and the OS account that ran it, whatever
`--by` says), and `who`, the OS user it acts as without `--by`.
"""

from __future__ import annotations

import getpass
import socket
from datetime import UTC, datetime, timedelta
from typing import Annotated

import psycopg
import typer
from rich.markup import escape
from rich.table import Table

from metrify_assets.cli.console import command_console, to_json
from metrify_assets.cli.db import connect, note_embedded_server
from metrify_assets.env import resolve_settings
from metrify_assets.storage.audit import Caller

SINCE_UNITS = {"m": 60, "h": 3600, "d": 86400}


def who() -> str:
    """The OS user: who a command acts as when it is given no `--by`."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "unknown"


def cli_caller(actor: str) -> Caller:
    """A command's caller for the audit log: `actor` (its `--by`, else the OS user) on this host, run
    by the OS user `who()` (the entry's `account`: a `--by` is typed, the login is not)."""
    return Caller(actor, "cli", socket.gethostname(), who())


def parse_since(value: str, now: datetime) -> datetime:
    """`30m`, `12h`, `7d` back from `now`, or an ISO 8601 date or time (naive: UTC)."""
    text = value.strip().lower()
    number, unit = text[:-1], text[-1:]
    if unit in SINCE_UNITS and number.isascii() and number.isdigit():
        return now - timedelta(seconds=int(number) * SINCE_UNITS[unit])
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError as err:
        raise typer.BadParameter(
            f"a duration back from now (30m, 12h, 7d) or an ISO 8601 date or time, got {value!r}",
            param_hint="--since",
        ) from err
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def unknown_action_hint(conn: psycopg.Connection, action: str) -> str | None:
    """Why `--action` matched nothing when no entry ever had it, neither as an action nor as a family
    (`--action reveiw`): the actions the log holds, to pick from. None when some entry has it (the
    other filters left nothing). The actions are the log's own: what was recorded is what can match."""
    actions = [row[0] for row in conn.execute("SELECT DISTINCT action FROM ops.audit_log ORDER BY 1")]
    if any(a == action or a.startswith(f"{action}.") for a in actions):
        return None
    known = ", ".join(actions) if actions else "none yet"
    return f"no entry has action {action!r} or an action of that family; the log's actions: {known}"


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit_cmd(
        since: Annotated[
            str | None,
            typer.Option(
                help="Only entries from then on: 30m, 12h, 7d back, or an ISO 8601 date or time (UTC)."
            ),
        ] = None,
        actor: Annotated[
            str | None, typer.Option(help="Only this actor (a --by name, OS user, token subject).")
        ] = None,
        account: Annotated[
            str | None,
            typer.Option(
                help="Only entries made under this account (the OS user that ran the CLI, a token subject)."
            ),
        ] = None,
        token_id: Annotated[
            str | None,
            typer.Option(
                "--token-id",
                help="Only the API calls made with this token (its `jti`, the table's token column).",
            ),
        ] = None,
        action: Annotated[
            str | None,
            typer.Option(help="Only this action (review.approve) or family (review: every review.* action)."),
        ] = None,
        target: Annotated[str | None, typer.Option(help="Only this target (hold:3, alert:12, ...).")] = None,
        limit: Annotated[int, typer.Option(min=1, help="At most this many entries, newest first.")] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON array of the entries.")] = False,
    ) -> None:
        """List the audit log, newest first: review decisions, VEE edits, legal holds, alert acks and
        resolutions, API ingestion, dead-letter replays, restores, rollbacks and lifecycle runs."""
        from metrify_assets.observability import audit

        start = parse_since(since, datetime.now(UTC)) if since else None
        settings = resolve_settings()
        with connect(settings) as conn:
            found = audit.entries(
                conn,
                since=start,
                actor=actor,
                action=action,
                target=target,
                limit=limit,
                account=account,
                token_id=token_id,
            )
            hint = unknown_action_hint(conn, action) if action and not found else None
        if as_json:
            typer.echo(to_json([e.as_dict() for e in found]))
            if hint:
                typer.echo(hint, err=True)
            return
        table = Table(title=f"audit log: {len(found)} entries (newest first)")
        columns = (
            "id",
            "at (UTC)",
            "actor",
            "account",
            "token",
            "action",
            "target",
            "rows",
            "channel",
            "from",
            "details",
        )
        for column in columns:
            table.add_column(column, overflow="fold")
        for e in found:
            cells = (
                str(e.id),
                f"{e.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
                e.actor,
                e.account or "",
                e.token_id or "",
                e.action,
                e.target,
                "" if e.affected is None else f"{e.affected:,}",
                e.channel,
                e.origin or "",
                to_json(e.details),
            )
            table.add_row(*(escape(c) for c in cells))  # entries are data, not markup
        command_console().print(
            table if found else escape(f"no audit entries match{f'; {hint}' if hint else ''}")
        )
        note_embedded_server(settings)
