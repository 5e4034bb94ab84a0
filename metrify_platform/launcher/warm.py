"""`WarmRunLauncher`: Dagster runs forked from a worker that has already imported the code location.

Dagster's `DefaultRunLauncher` starts every run as a fresh Python process that imports Dagster, dbt
and, at its first validation, GX before it ingests a single reading: 10-40 s from dequeue to a
started run on 2 cores (benchmark case 3). For a Kafka sensor that launches small runs every few
seconds, that is most of the latency. This launcher keeps one worker process
(`metrify_platform.launcher.worker`) with those modules imported and forks it per run: about 2 s from
dequeue to a started run, most of it the run opening its event log. Each run is still its own process
(isolation, memory returned at exit, terminate by signal) and executes exactly what `dagster api
execute_run` executes.

The worker is restarted when any source file of a preloaded package changes, so edited code is
picked up on the next launch as it would be with the default launcher. Configure it in
`dagster.yaml` (see `deploy/dagster.yaml`):

    run_launcher:
      module: metrify_platform.launcher
      class: WarmRunLauncher
      config:
        preload: [metrify_assets.definitions, great_expectations]
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Self

import dagster as dg

# SQLAlchemy's ORM package, imported here, in the daemon's main thread as it loads the instance: left
# to a daemon thread's first `inspect()`, two threads could import it at once and one would see it
# partially initialized (seen in the daemon fault test: the sensor's cursor write failed, and the
# next tick requested an overlapping Kafka range).
import sqlalchemy.orm  # noqa: F401
from dagster._core.errors import DagsterLaunchFailedError
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData

PID_TAG = "metrify/run_pid"
# GX is otherwise imported on a run's first validation (quality/gx.py): in every forked run.
DEFAULT_PRELOAD = ("metrify_assets.definitions", "great_expectations")
INSTALLED = {"site-packages", "dist-packages"}


def source_fingerprint(modules: Sequence[str]) -> float:
    """The newest modification time of any `.py` file in the top-level packages of `modules`,
    except installed packages (site-packages change only with a deployment, which restarts)."""
    newest = 0.0
    for root in {m.split(".")[0] for m in modules}:
        module = sys.modules.get(root) or importlib.import_module(root)
        paths = list(getattr(module, "__path__", [])) or [Path(module.__file__ or ".").parent]
        for path in paths:
            if Path(path).parent.name in INSTALLED:
                continue
            for file in Path(path).rglob("*.py"):
                newest = max(newest, file.stat().st_mtime)
    return newest


class _Worker:
    """One worker process and its request/reply pipes."""

    def __init__(self, modules: Sequence[str]) -> None:
        self.fingerprint = source_fingerprint(modules)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "metrify_platform.launcher.worker", *modules],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        ready = self._reply()
        if not ready.get("ready"):
            raise DagsterLaunchFailedError(f"the warm run worker did not start: {ready}")

    def _reply(self) -> dict[str, Any]:
        out: IO[str] = self.process.stdout  # type: ignore[assignment]
        line = out.readline()
        if not line:
            code = self.process.wait()
            raise DagsterLaunchFailedError(
                f"the warm run worker exited with code {code} (its stderr is the daemon's log)"
            )
        reply: dict[str, Any] = json.loads(line)
        return reply

    def fork(self, args_json: str) -> int:
        stdin: IO[str] = self.process.stdin  # type: ignore[assignment]
        try:
            stdin.write(json.dumps({"args": args_json}) + "\n")
            stdin.flush()
        except BrokenPipeError as err:
            raise DagsterLaunchFailedError("the warm run worker is gone") from err
        reply = self._reply()
        if "pid" not in reply:
            raise DagsterLaunchFailedError(f"the warm run worker refused the run: {reply.get('error')}")
        return int(reply["pid"])

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.stdin:
            with contextlib.suppress(BrokenPipeError):  # raised only when the worker is already gone
                self.process.stdin.close()  # the worker's loop ends at EOF; forked runs carry on
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class WarmRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run as a fork of a worker that has the code location imported already."""

    def __init__(
        self, preload: Sequence[str] = DEFAULT_PRELOAD, inst_data: ConfigurableClassData | None = None
    ) -> None:
        self._inst_data = inst_data
        self._preload = list(preload)
        self._worker: _Worker | None = None
        self._lock = threading.Lock()
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {
            "preload": dg.Field(
                [str],
                is_required=False,
                default_value=list(DEFAULT_PRELOAD),
                description="Modules the worker imports before forking (the code location's module).",
            )
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> Self:
        return cls(preload=config_value["preload"], inst_data=inst_data)

    def _current_worker(self) -> _Worker:
        """The running worker; a new one when there is none, it died, or the code changed."""
        worker = self._worker
        if worker is not None and (
            not worker.alive() or source_fingerprint(self._preload) != worker.fingerprint
        ):
            worker.stop()
            worker = None
        if worker is None:
            worker = self._worker = _Worker(self._preload)
        return worker

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        if run.job_code_origin is None:
            raise DagsterLaunchFailedError(f"run {run.run_id} has no code origin to execute")
        args = ExecuteRunArgs(
            job_origin=run.job_code_origin,
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
            set_exit_code_on_failure=False,
        )
        with self._lock:
            try:
                pid = self._current_worker().fork(dg.serialize_value(args))
            except DagsterLaunchFailedError:
                if self._worker is not None and self._worker.alive():
                    raise  # it refused the run: a new worker would too
                # It died between runs: _current_worker starts a fresh one, for one more try.
                pid = self._current_worker().fork(dg.serialize_value(args))
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(pid)})

    def _pid(self, run: dg.DagsterRun) -> int | None:
        value = run.tags.get(PID_TAG)
        return int(value) if value else None

    def terminate(self, run_id: str) -> bool:
        """Interrupt the run's process; Dagster's interrupt handling marks the run canceled."""
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        pid = self._pid(run)
        if pid is None or not _alive(pid):
            self._instance.report_run_canceled(run, message="The run's process was already gone.")
            return True
        try:
            os.killpg(pid, signal.SIGINT)  # a forked run leads its group: its children stop too
        except ProcessLookupError:  # a run executed by a process that leads no group (a CLI's)
            os.kill(pid, signal.SIGINT)
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        pid = self._pid(run)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "the run has no process id tag yet")
        if _alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run process {pid} is gone")

    def dispose(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
