"""The root command group: every command module is listed, and only the command asked for is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from metrify_assets.cli import main
from metrify_assets.cli.main import COMMANDS, app, summary
from metrify_assets.resources import PostgresResource
from metrify_platform.kafka_broker import free_port

CLI_DIR = Path(main.__file__).parent
# Packages that cost a command a second or more to import (Dagster with its resources, pandas and
# numpy, GX, the Redis and Kafka clients, pyarrow, FastAPI, scikit-learn, matplotlib, boto3), which
# a quick command and every command's --help must not pay for.
HEAVY = (
    "dagster",
    "dagster_dbt",
    "great_expectations",
    "pandas",
    "numpy",
    "redis",
    "kafka",
    "pyarrow",
    "fastapi",
    "sklearn",
    "matplotlib",
    "boto3",
)


def test_every_command_module_is_listed() -> None:
    modules = {p.stem for p in CLI_DIR.glob("*.py") if "\ndef register(app: typer.Typer)" in p.read_text()}
    assert set(COMMANDS) == modules
    assert len(COMMANDS) == len(set(COMMANDS))


def test_root_help_lists_each_command_with_its_module_summary() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=250)
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert summary(name)  # a module without a docstring would list an empty line
        assert f" {name} " in result.output
    assert "The operational PostgreSQL database: its URL" in result.output


def probe(*args: str, env: dict[str, str] | None = None, exit_code: int = 0) -> set[str]:
    """Run the CLI with `args` in a fresh interpreter (in `env`), expecting `exit_code`; the `HEAVY`
    packages it imported."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from metrify_assets.cli.main import app\n"
        f"result = CliRunner().invoke(app, {list(args)!r})\n"
        f"assert result.exit_code == {exit_code}, result.output\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_root_help_imports_no_heavy_package() -> None:
    assert probe("--help") == set()


@pytest.mark.parametrize("name", COMMANDS)
def test_a_commands_help_imports_no_heavy_package(name: str) -> None:
    """A command's module imports what its commands run in their bodies: `metrify demo --help` took
    9 s importing Dagster, dbt, pandas and the Kafka client; now every command's help takes about 1 s."""
    assert probe(name, "--help") == set()


def test_a_command_imports_what_it_needs_when_it_runs(tmp_path: Path) -> None:
    """`metrify simulate` to landing files imports the simulation (pandas), and not Dagster."""
    env = {**os.environ, "METRIFY_HOME": str(tmp_path)}
    assert probe("simulate", "--meters", "1", "--days", "1", env=env) == {"pandas", "numpy", "pyarrow"}


def test_a_drain_without_kafka_says_so_before_it_loads_the_code_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It imported Dagster, dbt and GX (7.6 s, 300 MB) to say that Kafka is not configured."""
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    result = CliRunner().invoke(app, ["kafka", "drain"])
    assert result.exit_code == 2
    assert "Kafka is not configured: set KAFKA_BOOTSTRAP_SERVERS" in result.output
    assert probe("kafka", "drain", env=dict(os.environ), exit_code=2) == set()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "command", [["review", "list"], ["alerts", "list"], ["holds", "list"], ["dlq", "list"]]
)
def test_the_listings_import_no_heavy_package(
    command: list[str], pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """Run against a database: these took 3.5 to 7 s, importing Dagster through the resources
    (`postgres_resource`, the lake's and the cache's modules), pandas through the contracts, and the
    ingest path and the code location for `dlq list`; now they import what they use."""
    env = {**os.environ, "METRIFY_HOME": str(tmp_path), "METRIFY_POSTGRES_URL": pg_resource.get_url()}
    assert probe(*command, env=env) == set()


@pytest.mark.postgres
@pytest.mark.parametrize("command", [["status"], ["metrics", "show"]])
def test_status_and_metrics_import_dagster_and_no_other_heavy_package(
    command: list[str], pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """They read the Dagster instance, and no Kafka client where none is configured (an error of one is
    named a system error once kafka-python is loaded: `errors.py`); `metrify status` took 17 to 28 s,
    importing dbt through the schedules, pandas through the ledger's and the model's modules, GX, the
    Redis client, and the launcher's ORM; `metrics serve` about 20 s, with FastAPI for its pool."""
    env = {
        **os.environ,
        "METRIFY_HOME": str(tmp_path),
        "METRIFY_POSTGRES_URL": pg_resource.get_url(),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    assert probe(*command, env=env) == {"dagster"}


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_has_its_own_help(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: metrify " + name in " ".join(result.output.split())


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["nonesuch"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("metrify ") and result.output.split()[1][0].isdigit()


def test_a_group_lists_each_command_on_unbroken_lines() -> None:
    # `review reject`'s docstring breaks its first sentence after "for a"; its summary must not.
    group = typer.main.get_group(app)
    with typer.Context(group) as ctx:
        review = group.get_command(ctx, "review")
    reject = review.commands["reject"]  # type: ignore[union-attr]
    assert "\n" in (reject.help or "")
    assert reject.short_help is not None and "\n" not in reject.short_help
    assert "and rebalance the ledger; for a meter reading, VEE" in reject.short_help


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["alerts", "list", "--limit", "-1"], "--limit"),
        (["review", "list", "--source", "bogus"], "unknown source 'bogus'"),
        (["dlq", "list", "--source", "bogus"], "unknown source 'bogus'"),
        (["restore", "--from", "2026-03-29", "--to", "2026-03-01"], "2026-03-01 is before --from 2026-03-29"),
        (["restore", "--from", "2026-03-01", "--dataset", "foo"], "'foo' is not one of"),
        (["restore", "--from", "2026-03-01", "--using", "bogus"], "'bogus' is not one of archive, raw"),
        (
            ["restore", "--from", "2026-03-01", "--as-of", "2026-03-02"],
            "--as-of: applies to --using raw only",
        ),
        (["restore", "--from", "2026-03-01", "--keep-days", "-5"], "must be 0 to 3650 days, got -5"),
        (
            ["holds", "add", "--reason", "r", "--from", "0001-01-01", "--to", "9999-12-31"],
            "first day 0001-01-01 is outside 2000-01-01",
        ),
        (
            ["holds", "add", "--reason", "r", "--from", "2026-01-01", "--to", "9999-12-31"],
            "pass --until-released instead of --to",
        ),
        (
            [
                "holds",
                "add",
                "--reason",
                "r",
                "--from",
                "2026-01-01",
                "--to",
                "2026-02-01",
                "--until-released",
            ],
            "--to: cannot be given with --until-released",
        ),
        (["lifecycle", "run", "--as-of", "garbage"], "must be a date (YYYY-MM-DD), got 'garbage'"),
        (["lifecycle", "cost", "--prices", "/nonexistent.json"], "does not exist"),
    ],
)
def test_bad_input_is_a_usage_error_that_names_the_option_before_any_work(args: list[str], says: str) -> None:
    """Checked before a database is reached: a reversed range once printed an empty restore and exit 0,
    a negative limit a PostgreSQL traceback, an unknown review source an empty table; restore ignored
    --as-of without --using raw and kept a day hot "until" 5 days ago, and a hold took 0001-01-01..9999-12-31."""
    result = CliRunner().invoke(app, args, terminal_width=250)
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.split())


@pytest.mark.postgres
def test_lifecycle_status_imports_pandas_but_not_dagster(
    pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """It reads a frame (pandas), and took 3.9 s importing Dagster through `postgres_resource` (as
    `forecast show` did: it connects the same way now)."""
    env = {**os.environ, "METRIFY_HOME": str(tmp_path), "METRIFY_POSTGRES_URL": pg_resource.get_url()}
    assert probe("lifecycle", "status", env=env) == {"pandas", "numpy", "pyarrow"}


@pytest.mark.parametrize(
    "args", [["alerts", "list"], ["review", "list"], ["db", "status"], ["lifecycle", "status"]]
)
def test_a_database_that_cannot_be_reached_is_one_line_not_a_traceback(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A configured PostgreSQL that is down printed a traceback of 40-80 lines."""
    port = free_port()  # nothing listens on it
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", f"postgresql://metrify:s3cret@127.0.0.1:{port}/metrify")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: cannot reach the operational PostgreSQL database (connection")
    assert f'"127.0.0.1", port {port} failed' in result.stderr
    assert "Traceback" not in result.output and "s3cret" not in result.output
    assert result.stderr.count("\n") == 1


def test_an_error_that_is_not_about_reaching_the_database_is_raised_as_it_was() -> None:
    assert main.unreachable_database(ValueError("no")) is None
    query_error = psycopg.errors.QueryCanceled("canceling statement")  # an OperationalError with a SQLSTATE
    assert main.unreachable_database(query_error) is None
    # A connection our code closed and then used is a bug: its traceback stays.
    assert main.unreachable_database(psycopg.OperationalError("the connection is closed")) is None
    try:
        try:
            raise psycopg.OperationalError("connection failed: refused")
        except psycopg.OperationalError as err:
            raise RuntimeError("resource init failed") from err
    except RuntimeError as wrapped:
        assert main.unreachable_database(wrapped) == (
            "cannot reach the operational PostgreSQL database (connection failed: refused). Check "
            "METRIFY_POSTGRES_URL, or unset it to use the embedded server in METRIFY_HOME"
        )
    # A bug while handling an outage (`from None`: the outage is not its cause) is the bug.
    try:
        try:
            raise psycopg.OperationalError("connection failed: refused")
        except psycopg.OperationalError:
            raise KeyError("a real bug") from None
    except KeyError as bug:
        assert main.unreachable_database(bug) is None


def test_a_commands_own_exit_while_handling_an_outage_is_kept() -> None:
    """A command that handles the outage itself and exits 0 (or raises a usage error) is not turned
    into `cannot reach` with exit 1."""
    holder = typer.Typer()

    @holder.command()
    def probe(code: int = 0) -> None:
        try:
            raise psycopg.OperationalError("connection failed: refused")
        except psycopg.OperationalError as err:
            raise typer.Exit(code=code) from err  # the outage is its cause, and the command said so itself

    class OneCommand(main.LazyCommands):  # the root group's invoke, with `probe` as its one command
        def list_commands(self, ctx: Any) -> list[str]:
            return ["probe"]

        def get_command(self, ctx: Any, cmd_name: str) -> Any:
            return typer.main.get_command(holder) if cmd_name == "probe" else None

    root = typer.Typer(cls=OneCommand)
    root.callback()(lambda: None)
    result = CliRunner().invoke(root, ["probe", "--code", "3"])
    assert result.exit_code == 3 and "cannot reach" not in result.output


def test_an_unreachable_embedded_server_is_told_to_start_again_not_to_check_a_url(tmp_path: Path) -> None:
    """A trial's `metrify db stop` during `metrify run` (no METRIFY_POSTGRES_URL) was told to check
    METRIFY_POSTGRES_URL."""
    with pytest.raises(psycopg.OperationalError) as raised:
        psycopg.connect(f"postgresql://127.0.0.1:{free_port()}/metrify", connect_timeout=5)
    refused = raised.value
    line = main.unreachable_database(refused, embedded=tmp_path / "pg")
    assert line is not None and "METRIFY_POSTGRES_URL" not in line
    assert line.endswith(
        f"The embedded server in {tmp_path / 'pg'} is not running (stopped by `metrify db stop`, or it "
        "ended): run the command again, which starts it (`metrify db url` starts it alone)"
    )
    configured = main.unreachable_database(refused)
    assert configured is not None and configured.endswith(
        "Check METRIFY_POSTGRES_URL, or unset it to use the embedded server in METRIFY_HOME"
    )
