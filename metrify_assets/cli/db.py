"""`metrify db ...`: where the operational database is."""

from __future__ import annotations

import typer

from metrify_assets.env import resolve_settings
from metrify_assets.resources.build import postgres_resource
from metrify_assets.storage.migrate import migrate


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(help="The operational PostgreSQL database.", no_args_is_help=True)

    @db_app.command("url")
    def url() -> None:
        """Print the PostgreSQL URL in use (starting the embedded server if needed), for psql or a BI tool."""
        postgres = postgres_resource(resolve_settings())
        typer.echo(postgres.get_url())

    @db_app.command("migrate")
    def migrate_cmd() -> None:
        """Create or update the `ops` schema (idempotent)."""
        postgres = postgres_resource(resolve_settings())
        with postgres.connect() as conn:
            migrate(conn)
        typer.echo("ops schema is up to date")

    app.add_typer(db_app, name="db")
