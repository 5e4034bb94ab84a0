"""WarmRunLauncher on a real Dagster instance: runs are forks of the worker, they can be terminated,
and an edited code location is picked up on the next launch."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from metrify_assets.orchestration.instance import dagster_yaml
from metrify_assets.resources import PostgresResource
from metrify_platform.launcher import WarmRunLauncher
from metrify_platform.launcher.warm import PID_TAG

ROOT = Path(__file__).resolve().parents[2]

JOBS = """\
import os
import time
from pathlib import Path

import dagster as dg

VERSION = {version}


@dg.op
def record(context: dg.OpExecutionContext) -> None:
    out = Path(os.environ["WARM_TEST_OUT"]) / f"{{context.run_id}}.txt"
    out.write_text(f"{{VERSION}} {{os.getpid()}} {{os.getppid()}}")


@dg.job(executor_def=dg.in_process_executor)
def record_job() -> None:
    record()


@dg.op
def nap() -> None:
    time.sleep(120)


@dg.job(executor_def=dg.in_process_executor)
def nap_job() -> None:
    nap()
"""


def write_jobs(package: Path, version: int) -> None:
    (package / "jobs.py").write_text(textwrap.dedent(JOBS.format(version=version)))


@pytest.fixture
def warm_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    package = tmp_path / "src" / "warm_jobs_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    write_jobs(package, 1)
    out = tmp_path / "out"
    out.mkdir()
    src = str(tmp_path / "src")
    monkeypatch.syspath_prepend(src)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([src, str(Path.cwd())]))
    monkeypatch.setenv("WARM_TEST_OUT", str(out))
    launcher = {
        "module": "metrify_platform.launcher",
        "class": "WarmRunLauncher",
        "config": {"preload": ["warm_jobs_pkg.jobs"]},
    }
    with dg.instance_for_test(overrides={"run_launcher": launcher}) as instance:
        yield instance
    sys.modules.pop("warm_jobs_pkg.jobs", None)
    sys.modules.pop("warm_jobs_pkg", None)


def launch(instance: dg.DagsterInstance, job_name: str) -> str:
    module = importlib.import_module("warm_jobs_pkg.jobs")
    job = getattr(module, job_name)
    recon = dg.reconstructable(job)
    run = instance.create_run_for_job(job_def=job, job_code_origin=recon.get_python_origin())
    instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
    return run.run_id


def wait_finished(instance: dg.DagsterInstance, run_id: str, timeout: float = 120) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        if run.is_finished:
            return run
        time.sleep(0.1)
    raise TimeoutError(f"run {run_id} did not finish in {timeout}s")


def test_runs_are_forks_of_one_worker_and_pick_up_edited_code(
    warm_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first, second = launch(warm_instance, "record_job"), launch(warm_instance, "record_job")
    results = {}
    for run_id in (first, second):
        run = wait_finished(warm_instance, run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        version, pid, ppid = (out / f"{run_id}.txt").read_text().split()
        assert run.tags[PID_TAG] == pid
        results[run_id] = (int(version), int(pid), int(ppid))
    assert results[first][0] == results[second][0] == 1
    assert results[first][1] != results[second][1], "each run is its own process"
    assert results[first][2] == results[second][2] != os.getpid(), "both forked from one worker"

    write_jobs(tmp_path / "src" / "warm_jobs_pkg", 2)
    future = time.time() + 5  # mtime resolution must not hide the edit
    os.utime(tmp_path / "src" / "warm_jobs_pkg" / "jobs.py", (future, future))
    third = launch(warm_instance, "record_job")
    assert wait_finished(warm_instance, third).status == dg.DagsterRunStatus.SUCCESS
    version, _pid, ppid = (out / f"{third}.txt").read_text().split()
    assert int(version) == 2, "the edited code ran"
    assert int(ppid) != results[first][2], "a new worker was started for it"


def test_a_worker_that_died_is_replaced_on_the_next_launch(warm_instance: dg.DagsterInstance) -> None:
    first = launch(warm_instance, "record_job")
    assert wait_finished(warm_instance, first).status == dg.DagsterRunStatus.SUCCESS
    launcher = warm_instance.run_launcher
    assert isinstance(launcher, WarmRunLauncher)
    worker = launcher._worker
    assert worker is not None
    worker.process.kill()
    worker.process.wait()
    second = launch(warm_instance, "record_job")
    assert wait_finished(warm_instance, second).status == dg.DagsterRunStatus.SUCCESS
    assert launcher._worker is not None and launcher._worker.process.pid != worker.process.pid


def test_terminate_cancels_a_running_run(warm_instance: dg.DagsterInstance) -> None:
    run_id = launch(warm_instance, "nap_job")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = warm_instance.get_run_by_id(run_id)
        if run and run.status == dg.DagsterRunStatus.STARTED:
            break
        time.sleep(0.1)
    run = warm_instance.get_run_by_id(run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.STARTED
    assert warm_instance.run_launcher.check_run_worker_health(run).status.value == "RUNNING"
    started = time.monotonic()
    assert warm_instance.run_launcher.terminate(run_id)
    run = wait_finished(warm_instance, run_id, timeout=60)
    assert run.status == dg.DagsterRunStatus.CANCELED
    assert time.monotonic() - started < 30, "cancelled without waiting for the op's 120 s sleep"


@pytest.mark.postgres
def test_the_deployment_instance_config_loads_on_postgres(
    pg_resource: PostgresResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    url = pg_resource.get_url().replace("postgresql://", "postgresql+psycopg2://", 1)  # as documented
    monkeypatch.setenv("METRIFY_DAGSTER_POSTGRES_URL", url)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_launcher, WarmRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_enabled
        run = instance.create_run_for_job(job_def=dg.JobDefinition(graph_def=dg.GraphDefinition("noop")))
        assert instance.get_run_by_id(run.run_id) is not None, "run storage is the PostgreSQL database"
        instance.report_engine_event("deployment check", run)  # an event's NOTIFY needs psycopg2
        assert [e.message for e in instance.all_logs(run.run_id)] == ["deployment check"]


def test_the_local_instance_forks_runs_and_dequeues_every_second(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text(dagster_yaml(tmp_path))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_launcher, WarmRunLauncher)
        assert instance.get_settings("run_retries")["enabled"]
        coordinator = instance.run_coordinator
        assert getattr(coordinator, "dequeue_interval_seconds", None) == 1


CLI_RUN = """\
import sys
import dagster as dg
from dagster._core.instance import InstanceRef
from metrify_assets.orchestration.instance import execute_job, RunFailedError
from warm_jobs_pkg.jobs import nap_job

instance = dg.DagsterInstance.from_ref(dg.deserialize_value(sys.argv[1], InstanceRef))
try:
    execute_job(dg.Definitions(jobs=[nap_job]), "nap_job", instance)
except RunFailedError as err:
    print(err)
"""


def test_terminate_interrupts_a_run_the_cli_executes(
    warm_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """A run `execute_job` executes is tagged with its process, which leads no process group here
    (a drain's worker, `uv run metrify ...`): run monitoring sees it alive, and terminating the run
    interrupts that process."""
    script = tmp_path / "cli_run.py"
    script.write_text(CLI_RUN)
    cli = subprocess.Popen([sys.executable, str(script), dg.serialize_value(warm_instance.get_ref())])
    try:
        deadline = time.monotonic() + 120
        while not (runs := warm_instance.get_runs()) or runs[0].status != dg.DagsterRunStatus.STARTED:
            assert time.monotonic() < deadline and cli.poll() is None, "the CLI's run did not start"
            time.sleep(0.1)
        run = runs[0]
        assert run.tags[PID_TAG] == str(cli.pid) and os.getpgid(cli.pid) != cli.pid
        assert warm_instance.run_launcher.check_run_worker_health(run).status.value == "RUNNING"
        assert warm_instance.run_launcher.terminate(run.run_id)
        assert wait_finished(warm_instance, run.run_id, timeout=60).status == dg.DagsterRunStatus.CANCELED
        assert cli.wait(30) is not None
    finally:
        cli.kill()
