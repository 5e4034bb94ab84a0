"""`metrify`: simulate, ingest, run the demo, and find the database. `metrify COMMAND --help` for more.

Each command lives in its own module of this package, named as the command, with a `register(app)`
that adds it. The root group imports a command's module only when that command is asked for, so
`metrify --help` and the quick commands do not pay for importing Dagster, dbt and GX (about 9 s on
2 cores); its listing shows each module docstring's first paragraph, read without importing it. A
command's module imports those in the functions that use them, so its own --help does not pay either.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
import sys
from functools import cache
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated

import typer
from typer import _click
from typer.core import TyperCommand, TyperGroup

from metrify_assets.causes import causes
from metrify_assets.env import resolve_logging
from metrify_assets.observability import logs

# The root's commands in the order `metrify --help` lists them: module `metrify_assets.cli.<name>`.
COMMANDS = (
    "simulate",
    "ingest",
    "run",
    "status",
    "demo",
    "db",
    "kafka",
    "review",
    "dlq",
    "alerts",
    "holds",
    "restore",
    "lifecycle",
    "audit",
    "metrics",
    "api",
    "forecast",
    "warehouse",
    "ui",
)


def first_paragraph(doc: str) -> str:
    """A docstring's first paragraph on one line."""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


@cache
def summary(name: str) -> str:
    """The first paragraph of command `name`'s module docstring, on one line."""
    spec = find_spec(f"{__package__}.{name}")
    if spec is None or spec.origin is None:
        raise LookupError(f"no module for command {name!r}")
    return first_paragraph(ast.get_docstring(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))) or "")


def one_line_summaries(command: _click.Command) -> None:
    """Give each subcommand of a group its help's first paragraph on one line as its summary: Typer's
    rich help keeps a docstring's line breaks in a group's list of commands (not in a command's own
    help), which broke sentences in the middle."""
    for sub in getattr(command, "commands", {}).values():
        if sub.short_help is None and sub.help:
            sub.short_help = first_paragraph(sub.help)
        one_line_summaries(sub)


class LazyCommands(TyperGroup):
    """The root group: lists every command from `COMMANDS`, and imports a command's module only to run
    it or show its own help."""

    _listing = False

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        if self._listing:
            return TyperCommand(cmd_name, help=summary(cmd_name))
        holder = typer.Typer()
        importlib.import_module(f"{__package__}.{cmd_name}").register(holder)
        command = typer.main.get_group(holder).get_command(ctx, cmd_name)
        if command is not None:
            one_line_summaries(command)
        return command

    def invoke(self, ctx: _click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, _click.ClickException):
            raise  # a command's own exit, usage error or Ctrl-C, whatever it was handling
        except Exception as err:
            unreachable = unreachable_database(err, embedded_home())
            if unreachable is None:
                raise
            logging.getLogger(__name__).debug(
                "PostgreSQL unreachable", exc_info=err
            )  # METRIFY_LOG_LEVEL=DEBUG
            typer.echo(f"error: {unreachable}", err=True)
            raise typer.Exit(code=1) from err

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def embedded_home() -> Path | None:
    """The data directory of the home's embedded PostgreSQL when it is the database in use (no
    METRIFY_POSTGRES_URL), else None: what the hint for an unreachable database names."""
    from metrify_assets.env import resolve_settings

    try:
        settings = resolve_settings()
    except ValueError:  # a bad setting is its own error; the hint falls back to naming the URL
        return None
    return settings.pg_data_dir if settings.postgres_url is None else None


def unreachable_database(err: BaseException, embedded: Path | None = None) -> str | None:
    """One line for a PostgreSQL that cannot be reached (down, wrong host or port, refused login),
    found in `err`'s chain as Python's traceback shows it (a cause, or the context unless suppressed),
    or None: every command that reads `ops` would otherwise end in a traceback of dozens of lines.
    A connection our own code closed is a bug, not an outage, and keeps its traceback. The URL is not
    repeated (it may hold a password); psycopg's message names the host and port. `embedded`: the
    data directory of the embedded server in use (`embedded_home`), whose hint is not the URL's: a
    trial's `metrify db stop` during `metrify run` was told to check a URL it never set."""
    psycopg = sys.modules.get("psycopg")  # never imported here: a command that failed without it is no case
    if psycopg is None:
        return None
    for cause in causes(err):
        if isinstance(cause, psycopg.OperationalError) and cause.sqlstate is None:
            reason = " ".join(str(cause).split())
            if reason == "the connection is closed":
                return None
            return f"cannot reach the operational PostgreSQL database ({reason}). {reach_hint(embedded)}"
    return None


def reach_hint(embedded: Path | None) -> str:
    """What to do about an unreachable database: the configured URL, or the embedded server in
    `embedded` (stopped, or died, while the command ran; every command starts it when it is down)."""
    if embedded is None:
        return "Check METRIFY_POSTGRES_URL, or unset it to use the embedded server in METRIFY_HOME"
    from metrify_assets.storage.embedded_server import embedded_pid

    if embedded_pid(embedded) is None:
        state = "is not running (stopped by `metrify db stop`, or it ended)"
    else:
        state = "runs but did not answer"
    return (
        f"The embedded server in {embedded} {state}: run the command again, which starts it "
        "(`metrify db url` starts it alone)"
    )


app = typer.Typer(
    name="metrify",
    cls=LazyCommands,
    help="Metrify: smart-meter and grid telemetry as one Dagster lineage graph.",
    no_args_is_help=True,
    add_completion=False,
)


def print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"metrify {version('metrify')}")
        raise typer.Exit()


@app.callback()
def observe(
    _version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=print_version, help="Print the version and exit."),
    ] = False,
) -> None:
    # Before any command: logs as METRIFY_LOG_LEVEL and METRIFY_LOG_FORMAT say. Traces are set up by
    # what a command runs: the code location (`metrify run`) or the API (`metrify api serve`).
    try:
        settings = resolve_logging()
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from err
    logs.configure(settings)
    quiet_kafka_client(settings.level)


def quiet_kafka_client(level: str) -> None:
    """Keep kafka-python's own log off a command's stderr unless METRIFY_LOG_LEVEL is DEBUG: it logs
    an ERROR per connection attempt to a broker that is down or still starting (18 lines before
    `metrify status`'s table, 11 while `metrify kafka broker` came up), and the command's own
    message says what failed (`Kafka could not be read: ...`, a Kafka source not drained)."""
    if logging.getLevelName(level) != logging.DEBUG:
        logging.getLogger("kafka").setLevel(logging.CRITICAL)


if __name__ == "__main__":
    app()
