"""Run Metrify's jobs in this process, on the local Dagster instance (for the CLI and tests).

The runs land in the same instance `dagster dev` shows (DAGSTER_HOME, default `.metrify/dagster`),
so what the CLI did is visible in the UI afterwards.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import dagster as dg
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.execution.api import create_execution_plan, execute_run
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin

from metrify_assets.env import Settings
from metrify_assets.errors import named_error, root_error
from metrify_assets.resources import PostgresResource
from metrify_assets.run_alerts import job_assets, settle

log = logging.getLogger(__name__)

# Runs fork from a worker with the code location imported: they start in about a second.
WARM_LAUNCHER_YAML = """\
run_launcher:
  module: metrify_platform.launcher
  class: WarmRunLauncher
  config:
    preload: [metrify_assets.definitions, great_expectations]
"""
LOCAL_HEADER = "# Local instance for `metrify` and `dagster dev` (written by metrify"
LOCAL_YAML = (
    f"{LOCAL_HEADER}; production: deploy/dagster.yaml)\n"
    + WARM_LAUNCHER_YAML
    + """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1  # Dagster's 5 s would be most of a micro-batch's wait
run_monitoring:  # a run whose process died is marked failed, so it is retried and re-requested
  enabled: true
  poll_interval_seconds: 15
  start_timeout_seconds: 90  # launched but never started (its daemon killed mid-launch): failed
run_retries:  # re-run a run whose process died; a step's own failures are retried by its policy
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
event_log_storage:  # Dagster's SQLite event log, where it keeps it; new runs' files from a template
  module: metrify_platform.event_log
  class: TemplatedSqliteEventLogStorage
  config:
    base_dir: {event_log_dir}
telemetry:
  enabled: false
nux:  # the UI's "join the community" dialog covered every page of a new home
  enabled: false
"""
)


def dagster_yaml(home: Path) -> str:
    """The local instance's `dagster.yaml` for the instance directory `home`."""
    # Where Dagster's default storage keeps it, so history from before stays in view; JSON quoting
    # is YAML's too.
    return LOCAL_YAML.replace("{event_log_dir}", json.dumps(str(home.resolve() / "history" / "runs")))


def prepare_local_home(settings: Settings) -> Path:
    """The local instance's directory (DAGSTER_HOME wins when set), with metrify's `dagster.yaml`."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    wanted = dagster_yaml(home)
    current = config.read_text() if config.exists() else None
    # One that metrify wrote is brought up to date (an older release named other modules, or the
    # directory moved); one a user wrote is theirs.
    if current is None or (current.startswith(LOCAL_HEADER) and current != wanted):
        config.write_text(wanted)
    return home


def local_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent local instance; DAGSTER_HOME wins when set."""
    os.environ["DAGSTER_HOME"] = str(prepare_local_home(settings))
    return dg.DagsterInstance.get()


class RunFailedError(RuntimeError):
    pass


# How a failed run's error says its alert was not recorded (`settle_alerts`), which the run summaries
# read (`alert_unrecorded`): the error is all that reaches them, from a drain's worker processes too.
UNRECORDED = "its alert could not be recorded"


def alert_unrecorded(error: str) -> bool:
    """Whether a failed run's error (`str(RunFailedError)`) says its alert could not be recorded."""
    return f"({UNRECORDED}: " in error


# The code location of `workspace.yaml` (and of the deployment's code server), whose Definitions
# Dagster names `__repository__`. The CLI's runs carry it as their origin, so the UI can re-execute
# them there (a run without an origin shows in the UI, but its re-execution fails).
LOCATION_NAME = "metrify"
REPOSITORY_NAME = "__repository__"


def job_origin(job_name: str) -> RemoteJobOrigin:
    """Where `job_name` is loaded from in the UI and by the daemon: the location by its name."""
    location = RegisteredCodeLocationOrigin(location_name=LOCATION_NAME)
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, REPOSITORY_NAME), job_name)


def execute_job(
    defs: dg.Definitions,
    job_name: str,
    instance: dg.DagsterInstance,
    run_config: dict[str, object] | None = None,
    tags: dict[str, str] | None = None,
    log_level: str = "WARNING",
    asset_selection: list[str] | None = None,
) -> dg.JobExecutionResult:
    """Execute a job in process; a failed run raises with the failing step's error. Either way the
    run's alert is settled first, as the daemon's run sensors would (`settle_alerts`).

    In this process, as `execute_in_process` would, but with the job as the code location defines
    it (every job's executor is the in-process one), the code location as the run's origin and this
    process as the run's process. The console shows warnings and errors only (the CLI draws its own
    progress); the full event log is in the instance, as for any run.
    """
    from metrify_platform.launcher.warm import PID_TAG  # the launcher's SQLAlchemy ORM: for runs only

    config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **(run_config or {})}
    job_def = defs.resolve_job_def(job_name)
    selection = frozenset(dg.AssetKey(a) for a in asset_selection) if asset_selection else None
    # Executor and IO manager as defined (`execute_in_process` swaps both), so the run's snapshot is
    # the one the UI and the daemon load.
    job = InMemoryJob(job_def).get_subset(asset_selection=selection) if selection else InMemoryJob(job_def)
    instance_ref = instance.get_ref() if instance.is_persistent else None
    run = instance.create_run_for_job(
        job_def=job.get_definition(),
        execution_plan=create_execution_plan(job, run_config=config, instance_ref=instance_ref),
        run_config=config,
        # The run's process, as the warm launcher tags the runs it forks: run monitoring (a daemon
        # beside the CLI, `metrify ui`) then sees this process alive instead of failing the run.
        tags={**job_def.run_tags, **(tags or {}), PID_TAG: str(os.getpid())},
        asset_selection=selection,
        remote_job_origin=job_origin(job_name),
    )
    result = execute_run(job, run, instance)
    failures = [e for e in result.all_events if e.is_step_failure]
    unrecorded = settle_alerts(defs, instance, result.run_id, failures)
    if not result.success:
        errors = [
            named_error(root_error(e.step_failure_data.error))
            for e in failures
            if e.step_failure_data.error is not None
        ]
        raise RunFailedError(
            f"{job_name} failed (run {result.run_id}): {'; '.join(errors) or 'see the run log'}{unrecorded}"
        )
    return result


def with_resolved_url(postgres: PostgresResource) -> PostgresResource:
    """The resource as a run's steps have it: the code location's URL is a `dg.EnvVar`, read here.
    (`process_config_and_initialize` would build an ephemeral Dagster instance for it: 50 ms a run.)"""
    url = postgres.url
    if isinstance(url, dg.EnvVar):
        name, url = url.env_var_name, url.get_value()
        if url is None:  # as a run's resource initialisation refuses it (not the embedded server)
            raise ValueError(f"environment variable {name} is not set")
    return PostgresResource(url=url, data_dir=postgres.data_dir)


def settle_alerts(
    defs: dg.Definitions, instance: dg.DagsterInstance, run_id: str, failures: list[dg.DagsterEvent]
) -> str:
    """Record the run's failure alert, or resolve what its success covers, as the daemon's run
    sensors would (`run_alerts.settle`): a run the CLI executes may be seen by no daemon. Needs the
    definitions' `postgres` (a test's definitions without one have no alert store). '' when done;
    otherwise why not, for the run's error."""
    postgres = (defs.resources or {}).get("postgres")
    finished = instance.get_run_by_id(run_id)
    if not isinstance(postgres, PostgresResource) or finished is None:
        return ""
    try:
        with with_resolved_url(postgres).connect() as conn:
            settle(conn, finished, failures, job_assets(defs.get_repository_def(), finished.job_name))
    # Whatever went wrong (the database down, its URL refused, the embedded server not starting), the
    # run's own outcome stands: a success is returned, a failure raises its step's error.
    except Exception as err:  # noqa: BLE001 - reported here and in the run's error
        reason = f"{type(err).__name__}: {err}"
        log.warning("run %s: %s: %s", run_id, UNRECORDED, reason)
        return (
            f" ({UNRECORDED}: {reason}; the next `metrify run` records it before it plans its runs, "
            "as does a running daemon's run_alerts_reconcile_sensor)"
        )
    return ""
