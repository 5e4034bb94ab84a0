"""`metrify`: simulate, ingest, run the demo, and find the database. `metrify COMMAND --help` for more."""

from __future__ import annotations

import typer

from metrify_assets.cli import (
    alerts,
    api,
    audit,
    db,
    demo,
    dlq,
    forecast,
    holds,
    ingest,
    kafka,
    lifecycle,
    metrics,
    restore,
    review,
    run,
    simulate,
    ui,
)
from metrify_assets.env import resolve_logging
from metrify_assets.observability import logs

app = typer.Typer(
    name="metrify",
    help="Metrify: smart-meter and grid telemetry as one Dagster lineage graph.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def observe() -> None:
    # Before any command: logs as METRIFY_LOG_LEVEL and METRIFY_LOG_FORMAT say. Traces are set up by
    # what a command runs: the code location (`metrify run`) or the API (`metrify api serve`).
    try:
        logs.configure(resolve_logging())
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from err


for module in (
    simulate,
    ingest,
    run,
    demo,
    db,
    kafka,
    review,
    dlq,
    alerts,
    holds,
    restore,
    lifecycle,
    audit,
    metrics,
    api,
    forecast,
    ui,
):
    module.register(app)


if __name__ == "__main__":
    app()
