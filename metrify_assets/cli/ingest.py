"""`metrify ingest SOURCE PATH`: land a CSV, JSON Lines or Parquet file as contract v1 messages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from metrify_assets.cli.db import note_embedded_server
from metrify_assets.env import resolve_settings
from metrify_assets.ingestion.landing import land_lines
from metrify_assets.ingestion.readers import PRESETS, ingest_file, parse_pairs


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest_cmd(
        source: Annotated[str, typer.Argument(help="meter_readings, grid_status or weather_observations.")],
        path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The file to ingest.")],
        fmt: Annotated[
            str | None, typer.Option("--format", help="csv, jsonl or parquet (default: from the extension).")
        ] = None,
        mapping: Annotated[
            list[str] | None, typer.Option("--map", help="FIELD=COLUMN: read a contract field from a column.")
        ] = None,
        constants: Annotated[
            list[str] | None, typer.Option("--set", help="FIELD=VALUE: the same value for every record.")
        ] = None,
        preset: Annotated[str | None, typer.Option(help=f"A known layout: {', '.join(PRESETS)}.")] = None,
        meter_id: Annotated[
            str | None,
            typer.Option(help="meter_id for a preset's readings (default: UCI-HOUSEHOLD-1, OPENSTEF-307)."),
        ] = None,
        station_id: Annotated[
            str | None,
            typer.Option(help="station_id for a preset's weather observations (default: OPENSTEF-307)."),
        ] = None,
        timezone: Annotated[
            str | None, typer.Option(help="IANA timezone of timestamps without an offset.")
        ] = None,
        landing_dir: Annotated[
            Path | None, typer.Option(help="Landing directory (default: METRIFY_LANDING_DIR, HOME/landing).")
        ] = None,
        backfill: Annotated[
            bool,
            typer.Option(
                "--backfill/--live",
                help="Declare the file history (default: an import is not a live feed, so its records are "
                "not scored for timeliness); --live scores them against the time they land.",
            ),
        ] = True,
    ) -> None:
        """Read a file, map its columns to the source's contract, and land the records."""
        try:
            result = ingest_file(
                path,
                source,
                fmt=fmt,
                mapping=parse_pairs(mapping or []),
                constants=parse_pairs(constants or []),
                preset=preset,
                meter_id=meter_id,
                timezone=timezone,
                station_id=station_id,
            )
        except ValueError as err:
            raise typer.BadParameter(str(err)) from err
        console = Console()
        table = Table(title=f"{path.name} -> {source}")
        table.add_column("")
        table.add_column("count", justify="right")
        table.add_row("rows read", f"{result.rows_read:,}")
        table.add_row("records", f"{result.records:,}")
        for reason, count in result.skipped.items():
            table.add_row(f"skipped: {reason}", f"{count:,}")
        for note, count in result.notes.items():
            table.add_row(note, f"{count:,}")
        console.print(table)
        if not result.lines:
            console.print("nothing to land")
            raise typer.Exit(code=1)
        landed = land_lines(
            landing_dir or resolve_settings().landing_dir, source, result.lines, backfill=backfill
        )
        console.print(
            f"landed {landed.path}" + (" (declared backfill: timeliness not scored)" if backfill else "")
        )
        note_embedded_server(resolve_settings())  # no database needed here, but one may run from before
