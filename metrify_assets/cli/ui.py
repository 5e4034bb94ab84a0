"""The Dagster UI and its daemon (`dagster dev`) on this home's instance.

`metrify ui` runs `dagster dev` with this home's `DAGSTER_HOME`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from metrify_assets.env import resolve_settings

# The project's workspace (one code location, `metrify`): the name runs and sensor states are kept
# under, so the UI finds the CLI's runs and the sensors' cursors whatever started it.
WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"


def register(app: typer.Typer) -> None:
    @app.command("ui")
    def ui(
        host: Annotated[str, typer.Option(help="Address the webserver listens on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port of the webserver.")] = 3000,
    ) -> None:
        """The Dagster UI on http://HOST:PORT, with its daemon (sensors, schedules, queued runs), on the
        instance the CLI writes to (HOME/dagster, or DAGSTER_HOME), until Ctrl-C."""
        from metrify_assets.orchestration.instance import prepare_local_home

        if not WORKSPACE.exists():
            typer.echo(
                f"error: no workspace file at {WORKSPACE} (metrify ui runs from a project checkout)", err=True
            )
            raise typer.Exit(code=2)
        home = prepare_local_home(resolve_settings())
        dagster = str(Path(sys.executable).parent / "dagster")
        argv = [dagster, "dev", "-w", str(WORKSPACE), "--host", host, "--port", str(port)]
        typer.echo(f"Dagster UI on http://{host}:{port}, instance {home}", err=True)
        os.execve(dagster, argv, {**os.environ, "DAGSTER_HOME": str(home)})  # Ctrl-C reaches dagster dev
