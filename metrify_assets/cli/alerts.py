"""Alerts (grid states, data quality, pipeline failures): list, acknowledge, resolve, deliver now, test
the channels.

`metrify alerts list | ack | resolve | send | test-channel`.

Alerts are conditions in `ops.alerts` (grid states, data quality, pipeline failures), one per
condition while it stands. `send` runs what `alert_delivery_sensor` runs every 30 s (docs/alerts.md).
"""

from __future__ import annotations

from typing import Annotated, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from metrify_assets.alerts import store
from metrify_assets.alerts.channels import Channel, configured_channels, trial_notification
from metrify_assets.alerts.delivery import DeliveryPolicy, Outcome, deliver_pending, deliveries, retry_failed
from metrify_assets.cli.audit import cli_caller
from metrify_assets.cli.audit import who as os_user
from metrify_assets.cli.console import command_console, to_json
from metrify_assets.cli.db import connect, note_embedded_server
from metrify_assets.env import resolve_settings

AlertId = Annotated[int, typer.Argument(help="The alert's id (first column of `metrify alerts list`).")]
Note = Annotated[str | None, typer.Option("--note", help="Why, or what was done; stored with the alert.")]
STATUSES: tuple[store.Status, ...] = ("open", "acked", "resolved", "all")


ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Who (a name or e-mail), stored with the alert; default: the OS user."),
]


def _configured() -> tuple[list[Channel], DeliveryPolicy]:
    """The channels and the policy the environment configures (a misconfiguration: exit 2, said why)."""
    # Imported here: the channels' Dagster resource would cost `list`, `ack` and `resolve` over a second.
    from metrify_assets.resources.build import alert_channels_resource

    try:
        resource = alert_channels_resource(resolve_settings().alerts)
        return configured_channels(resource), DeliveryPolicy.of(resource, tick_budget=False)
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from err


def _no_channel(console: Console) -> None:
    console.print(
        "no alert channel configured: set METRIFY_ALERT_WEBHOOK_URL (+ _SECRET), "
        "METRIFY_ALERT_SLACK_WEBHOOK_URL or METRIFY_ALERT_SMTP_HOST (+ _TO); see docs/alerts.md"
    )


def register(app: typer.Typer) -> None:
    alerts_app = typer.Typer(
        help="Alerts: grid states, data quality and pipeline failures, one per standing condition.",
        no_args_is_help=True,
    )

    @alerts_app.command("list")
    def list_cmd(
        status: Annotated[
            str, typer.Option(help="open (includes acknowledged), acked, resolved or all.")
        ] = "open",
        kind: Annotated[str | None, typer.Option(help=f"Only this kind: {', '.join(store.KINDS)}.")] = None,
        limit: Annotated[int, typer.Option(min=1, help="At most this many alerts, newest first.")] = 100,
        as_json: Annotated[
            bool, typer.Option("--json", help="One JSON array, with each alert's deliveries.")
        ] = False,
    ) -> None:
        """List alerts, newest first, with what each channel was told."""
        if status not in STATUSES:
            raise typer.BadParameter(f"--status must be one of {', '.join(STATUSES)}, got {status!r}")
        if kind is not None and kind not in store.KINDS:
            raise typer.BadParameter(f"--kind must be one of {', '.join(store.KINDS)}, got {kind!r}")
        settings = resolve_settings()
        with connect(settings) as conn:
            alerts = store.list_alerts(conn, cast(store.Status, status), kind, limit)
            sent = deliveries(conn, [a.alert_id for a in alerts])
        if as_json:
            rows = [
                {
                    **a.__dict__,
                    "status": a.status,
                    "deliveries": [d.__dict__ for d in sent.get(a.alert_id, [])],
                }
                for a in alerts
            ]
            typer.echo(to_json(rows, indent=2))
            return
        table = Table(title=f"alerts ({status}{f', {kind}' if kind else ''}): {len(alerts)} shown")
        for column in (
            "id",
            "status",
            "severity",
            "kind",
            "subject",
            "summary",
            "opened",
            "last seen",
            "seen",
            "deliveries",
        ):
            table.add_column(column, overflow="fold")
        for a in alerts:
            cells = (
                str(a.alert_id),
                a.status + (f" ({a.acked_by})" if a.status == "acked" else ""),
                a.severity,
                a.kind,
                a.subject,
                a.summary,
                f"{a.opened_at:%Y-%m-%d %H:%M:%S}",
                f"{a.last_seen_at:%Y-%m-%d %H:%M:%S}",
                str(a.occurrences),
                ", ".join(d.text for d in sent.get(a.alert_id, [])) or "-",
            )
            table.add_row(*(escape(c) for c in cells))  # alert text is data, not markup
        command_console().print(table)
        note_embedded_server(settings)

    def _change(action: str, alert_id: int, by: str | None, note: str | None) -> None:
        by = by or os_user()
        settings = resolve_settings()
        with connect(settings) as conn:
            change = store.acknowledge if action == "ack" else store.resolve
            try:
                alert = change(conn, alert_id, by, note, caller=cli_caller(by))
            except store.AlertNotFoundError as err:
                typer.echo(f"error: {err.args[0]}", err=True)
                raise typer.Exit(code=1) from err
        who = alert.acked_by if action == "ack" else alert.resolved_by
        typer.echo(
            f"{alert.status}: #{alert.alert_id} [{alert.severity}] {alert.subject}: {alert.summary} (by {who})"
        )
        if action == "resolve":
            typer.echo(
                "channels told of its opening get the resolution on the next delivery (or `metrify alerts send`)"
            )

    @alerts_app.command("ack")
    def ack_cmd(alert_id: AlertId, by: ByOption = None, note: Note = None) -> None:
        """Acknowledge: someone is on it. The alert stays open (and keeps counting sightings)."""
        _change("ack", alert_id, by, note)

    @alerts_app.command("resolve")
    def resolve_cmd(alert_id: AlertId, by: ByOption = None, note: Note = None) -> None:
        """Resolve by hand; a later sighting of the same condition opens a new alert."""
        _change("resolve", alert_id, by, note)

    @alerts_app.command("send")
    def send_cmd(
        retry_failed_: Annotated[
            bool,
            typer.Option("--retry-failed", help="First re-queue deliveries that gave up (from 0 attempts)."),
        ] = False,
    ) -> None:
        """Deliver pending alerts and resolutions now: what alert_delivery_sensor does every 30 s."""
        console = command_console()
        channels, policy = _configured()
        if not channels:
            _no_channel(console)
            return
        settings = resolve_settings()
        console.print(
            f"delivering to {', '.join(c.name for c in channels)} (alerts at or above {policy.min_severity})"
        )

        def progress(outcome: Outcome) -> None:
            mark = {
                "delivered": "[green]✓[/green]",
                "pending": "[yellow]…[/yellow]",
                "failed": "[red]✗[/red]",
            }
            console.print(f"{mark[outcome.status]} {escape(outcome.text)}", highlight=False)

        with connect(settings, autocommit=True) as conn:
            if retry_failed_:
                console.print(f"re-queued {retry_failed(conn, [c.name for c in channels])} failed deliveries")
            report = deliver_pending(conn, channels, policy, on_outcome=progress)
        console.print(report.summary, markup=False, highlight=False)
        note_embedded_server(settings)
        if report.of_status("pending") or report.of_status("failed"):
            raise typer.Exit(code=1)

    @alerts_app.command("test-channel")
    def test_channel_cmd(
        channel: Annotated[
            str | None, typer.Option(help="Only this channel: webhook, slack or email.")
        ] = None,
    ) -> None:
        """Send a test notification (event `test`, about no stored alert) to each configured channel."""
        console = command_console()
        channels, policy = _configured()
        if channel is not None:
            channels = [c for c in channels if c.name == channel]
            if not channels:
                raise typer.BadParameter(f"channel {channel!r} is not configured")
        if not channels:
            _no_channel(console)
            raise typer.Exit(code=1)
        notification = trial_notification()
        table = Table(title=f"test notification {notification.delivery_id}")
        for column in ("channel", "outcome"):
            table.add_column(column)
        failed = 0
        for c in channels:
            try:
                c.send(notification, policy.timeout_s)
            except Exception as err:  # noqa: BLE001 - any failure is this channel's outcome, shown
                failed += 1
                table.add_row(c.name, f"[red]failed[/red]: {escape(str(err))}")
            else:
                table.add_row(c.name, "[green]delivered[/green]")
        console.print(table)
        if failed:
            raise typer.Exit(code=1)

    app.add_typer(alerts_app, name="alerts")
