"""The operational PostgreSQL database: its URL, its schema migrations, and stopping the embedded server.

`metrify db url | migrate | status | stop`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import typer
from rich.table import Table

from metrify_assets.cli.console import command_console
from metrify_assets.env import Settings, resolve_settings
from metrify_assets.storage import migrate as migrations
from metrify_assets.storage.embedded_server import embedded_pid, postgres_url, stop_embedded


def note_embedded_server(settings: Settings) -> None:
    """Say (on stderr, so `--json` and `db url` output stay parseable) that the home's embedded server
    outlives the command: pgserver leaves it running for the next command and `dagster dev`."""
    if settings.postgres_url is None and embedded_pid(settings.pg_data_dir) is not None:
        typer.echo(
            f"embedded PostgreSQL keeps running in {settings.pg_data_dir} (shared by metrify and "
            "dagster dev); stop it with `metrify db stop`",
            err=True,
        )


def settings_url(settings: Settings) -> str:
    """The operational database's URL: the configured one, else the home's embedded server's."""
    return postgres_url(settings.postgres_url, settings.pg_data_dir)


@contextmanager
def connect(settings: Settings, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """The operational database at its current schema, as `PostgresResource.connect` opens it, without
    importing Dagster: a command that only reads or writes `ops` starts in well under a second."""
    with migrations.migrated_connection(settings_url(settings), autocommit) as conn:
        yield conn


def _connect() -> psycopg.Connection:
    """A plain connection (no automatic migration): `status` must show what is pending."""
    return psycopg.connect(settings_url(resolve_settings()))


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(help="The operational PostgreSQL database.", no_args_is_help=True)

    @db_app.command("url")
    def url() -> None:
        """Print the PostgreSQL URL in use (starting the embedded server if needed), for psql or a BI tool."""
        settings = resolve_settings()
        typer.echo(settings_url(settings))
        note_embedded_server(settings)

    @db_app.command("migrate")
    def migrate_cmd() -> None:
        """Apply the pending schema migrations (each once, recorded in ops.schema_version)."""
        with _connect() as conn:
            applied = migrations.migrate(conn)
            version = max((m.version for m in migrations.applied(conn)), default=0)
        for m in applied:
            typer.echo(f"applied {m.version:04d}_{m.name}")
        typer.echo(f"ops schema at version {version} ({len(applied)} applied now)")
        note_embedded_server(resolve_settings())

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
        command_console().print(table)
        pending = [m for m in migrations.migrations() if m.version not in done]
        typer.echo(f"{len(pending)} pending" + (": run `metrify db migrate`" if pending else ""))
        note_embedded_server(resolve_settings())

    @db_app.command("stop")
    def stop() -> None:
        """Stop this home's embedded PostgreSQL (HOME/pg), which metrify commands leave running for each
        other and `dagster dev`; the next command starts it again. Connected processes (`dagster dev`)
        lose their connections. With METRIFY_POSTGRES_URL set there is no embedded server to stop."""
        settings = resolve_settings()
        if settings.postgres_url is not None:
            typer.echo("METRIFY_POSTGRES_URL is set: an external server, nothing embedded to stop")
            return
        if stop_embedded(settings.pg_data_dir):
            typer.echo(f"stopped the embedded PostgreSQL in {settings.pg_data_dir}")
        else:
            typer.echo(f"no embedded PostgreSQL running in {settings.pg_data_dir}: nothing to stop")

    app.add_typer(db_app, name="db")
