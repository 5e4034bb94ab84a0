"""`metrify db ...`: where the operational database is, and its schema version."""

from __future__ import annotations

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from metrify_assets.env import resolve_settings
from metrify_assets.resources.build import postgres_resource
from metrify_assets.storage import migrate as migrations


def _connect() -> psycopg.Connection:
    """A plain connection (no automatic migration): `status` must show what is pending."""
    return psycopg.connect(postgres_resource(resolve_settings()).get_url())


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(help="The operational PostgreSQL database.", no_args_is_help=True)

    @db_app.command("url")
    def url() -> None:
        """Print the PostgreSQL URL in use (starting the embedded server if needed), for psql or a BI tool."""
        typer.echo(postgres_resource(resolve_settings()).get_url())

    @db_app.command("migrate")
    def migrate_cmd() -> None:
        """Apply the pending schema migrations (each once, recorded in ops.schema_version)."""
        with _connect() as conn:
            applied = migrations.migrate(conn)
            version = max((m.version for m in migrations.applied(conn)), default=0)
        for m in applied:
            typer.echo(f"applied {m.version:04d}_{m.name}")
        typer.echo(f"ops schema at version {version} ({len(applied)} applied now)")

    @db_app.command("status")
    def status() -> None:
        """List the schema migrations: applied (with when) and pending."""
        with _connect() as conn:
            done = {m.version: m for m in migrations.applied(conn)}
        table = Table(title="ops schema migrations")
        for column in ("version", "name", "state", "applied at"):
            table.add_column(column)
        for m in migrations.migrations():
            row = done.get(m.version)
            state = "applied" if row else "pending"
            when = row.applied_at.strftime("%Y-%m-%d %H:%M:%S %Z") if row else ""
            table.add_row(f"{m.version:04d}", m.name, state, when)
        Console().print(table)
        pending = [m for m in migrations.migrations() if m.version not in done]
        typer.echo(f"{len(pending)} pending" + (": run `metrify db migrate`" if pending else ""))

    app.add_typer(db_app, name="db")
