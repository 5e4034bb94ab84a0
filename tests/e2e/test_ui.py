"""`metrify ui` serves the Dagster UI and daemon on the CLI's instance, where the CLI's runs can be
re-executed like any other: the UI's own GraphQL mutation, through the daemon's queue and the warm
launcher, against a real PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from dagster._core.launcher import WorkerStatus
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.cli.ui import STOP_GRACE, WORKSPACE
from metrify_assets.definitions import defs as load_defs
from metrify_assets.env import resolve_settings
from metrify_assets.ingestion.landing import land_lines
from metrify_assets.ingestion.sensors import landing_run_config
from metrify_assets.orchestration.instance import LOCATION_NAME, execute_job, local_instance
from metrify_assets.resources import PostgresResource
from metrify_platform.kafka_broker import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
SOURCE = "weather_observations"
OBSERVATIONS = [
    json.dumps(
        {
            "station_id": "UI-1",
            "observed_at": f"2026-03-01T{hour:02d}:00:00+00:00",
            "temperature_c": 4.5,
            "humidity_pct": 80.0,
            "pressure_hpa": 1012.0,
            "wind_speed_ms": 3.0,
            "precipitation_mm": 0.0,
        }
    )
    for hour in range(6)
]
RUN = """query Run($id: ID!) { runOrError(runId: $id) { ... on Run {
  status parentRunId pipelineSnapshotId repositoryOrigin { repositoryLocationName repositoryName } } } }"""
JOB = """query Job($job: String!, $location: String!) { pipelineOrError(params: {pipelineName: $job,
  repositoryName: "__repository__", repositoryLocationName: $location}) { ... on Pipeline { pipelineSnapshotId } } }"""
REEXECUTE = """mutation Reexecute($id: String!) {
  launchRunReexecution(reexecutionParams: {parentRunId: $id, strategy: ALL_STEPS}) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting until {what}")
        time.sleep(every)


def graphql(port: int, query: str, **variables: object) -> dict[str, Any]:
    response = httpx.post(
        f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables}, timeout=30
    )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return dict(body["data"])


@pytest.fixture
def home(tmp_path: Path, pg_resource: PostgresResource, pg: psycopg.Connection) -> Iterator[dict[str, str]]:
    env = {
        "METRIFY_HOME": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "METRIFY_POSTGRES_URL": pg_resource.get_url(),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield env


def start_ui(
    home: dict[str, str], port: int, log: Path, preexec_fn: Callable[[], None] | None = None
) -> subprocess.Popen[bytes]:
    """`metrify ui` on `port` in its own process group (session), its output to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "metrify"), "ui", "--port", str(port)],
            env={**os.environ, **home},
            cwd=home["METRIFY_HOME"],  # not the checkout: the workspace file is found from the package
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec_fn,
        )


@pytest.fixture
def ui(home: dict[str, str]) -> Iterator[int]:
    """`metrify ui` on a free port, in its own process group, stopped as Ctrl-C would."""
    port = free_port()
    log = Path(home["METRIFY_HOME"]) / "ui.log"
    proc = start_ui(home, port, log)

    def loaded() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            entries = graphql(port, LOCATIONS)["workspaceOrError"]["locationEntries"]
        except httpx.HTTPError:
            return False
        return [(e["name"], e["loadStatus"]) for e in entries] == [(LOCATION_NAME, "LOADED")]

    try:
        wait_for("the UI serves the code location", loaded, 300)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def family(pid: int) -> set[int]:
    """`pid` and every process under it (from /proc: each process's parent)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        parents[int(stat.parent.name)] = int(fields[1])
    found = {pid}
    while grown := {child for child, parent in parents.items() if parent in found} - found:
        found |= grown
    return found


def running(pid: int) -> bool:
    """Whether `pid` is a process that has not exited (a zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_sigterm_stops_the_ui_and_every_process_it_started(home: dict[str, str]) -> None:
    """A service manager's stop: SIGTERM to `metrify ui` alone ends it, the webserver, the daemon and the
    code server, with status 0, within the stop grace. Started with SIGINT ignored, as a shell script's
    `metrify ui &` (or a supervisor's wrapper) leaves it: `dagster dev` makes SIGTERM do what SIGINT
    does, so it ignored SIGTERM too and ran on until SIGKILL."""
    port = free_port()
    log = Path(home["METRIFY_HOME"]) / "ui-sigterm.log"
    proc = start_ui(home, port, log, preexec_fn=ignore_sigint)
    started: set[int] = set()
    try:

        def answers() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the webserver answers", answers, 300)
        started = family(proc.pid)
        assert len(started) >= 4, started  # metrify ui, dagster dev, its webserver, daemon, code server
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STOP_GRACE + 10) == 0, log.read_text()
        wait_for("every process it started has exited", lambda: not any(map(running, started)), 5, 0.2)
        assert time.monotonic() - stopping < STOP_GRACE + 10
    finally:
        for pid in {proc.pid, *started}:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait(10)


def test_help() -> None:
    result = CliRunner().invoke(app, ["ui", "--help"])
    assert result.exit_code == 0, result.output
    assert "--port" in result.output and "3000" in result.output


def test_the_workspace_names_the_location_the_cli_runs_carry() -> None:
    locations = yaml.safe_load(WORKSPACE.read_text())["load_from"]
    assert [entry["python_module"]["location_name"] for entry in locations] == [LOCATION_NAME]


def test_a_cli_run_is_re_executed_from_the_ui(home: dict[str, str], ui: int, pg: psycopg.Connection) -> None:
    settings = resolve_settings()
    instance = local_instance(settings)
    landed = land_lines(settings.landing_dir, SOURCE, OBSERVATIONS)
    cli_run = execute_job(
        load_defs(), f"ingest_{SOURCE}_job", instance, run_config=landing_run_config(SOURCE, landed)
    )
    # The instance `metrify ui` wrote is the warm launcher's: run monitoring finds the CLI's process.
    assert instance.run_launcher.check_run_worker_health(cli_run.dagster_run).status == WorkerStatus.RUNNING

    shown = graphql(ui, RUN, id=cli_run.run_id)["runOrError"]
    assert shown["repositoryOrigin"] == {
        "repositoryLocationName": LOCATION_NAME,
        "repositoryName": "__repository__",
    }
    # The job the run executed is the one the UI loaded: no "may be a different version" warning.
    loaded = graphql(ui, JOB, job=f"ingest_{SOURCE}_job", location=LOCATION_NAME)["pipelineOrError"]
    assert shown["pipelineSnapshotId"] == loaded["pipelineSnapshotId"]
    launched = graphql(ui, REEXECUTE, id=cli_run.run_id)["launchRunReexecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    child = launched["run"]["runId"]

    def finished() -> bool:
        return graphql(ui, RUN, id=child)["runOrError"]["status"] in ("SUCCESS", "FAILURE", "CANCELED")

    wait_for("the re-execution ends", finished, 300)  # queued, then launched by the daemon
    run = graphql(ui, RUN, id=child)["runOrError"]
    assert (run["status"], run["parentRunId"]) == ("SUCCESS", cli_run.run_id)
    # The same landing file again: one batch in the ledger, its observations stored once.
    assert pg.execute("SELECT count(*) FROM ops.ingest_ledger WHERE source = %s", (SOURCE,)).fetchone() == (
        1,
    )
    assert pg.execute("SELECT count(*) FROM ops.weather_observations").fetchone() == (len(OBSERVATIONS),)
