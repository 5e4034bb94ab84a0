"""`metrify`: simulate, ingest, run the demo, and find the database. `metrify COMMAND --help` for more."""

from __future__ import annotations

import typer

from metrify_assets.cli import (
    alerts,
    api,
    db,
    demo,
    dlq,
    holds,
    ingest,
    kafka,
    lifecycle,
    restore,
    review,
    run,
    simulate,
)

app = typer.Typer(
    name="metrify",
    help="Metrify: smart-meter and grid telemetry as one Dagster lineage graph.",
    no_args_is_help=True,
    add_completion=False,
)
for module in (simulate, ingest, run, demo, db, kafka, review, dlq, alerts, holds, restore, lifecycle, api):
    module.register(app)


if __name__ == "__main__":
    app()
