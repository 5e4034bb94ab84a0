"""Every Dagster instance the project ships loads with Dagster's own config schema and connects to a
real PostgreSQL: deploy/dagster.yaml (one machine, the warm run launcher) and the instance Dagster's
Helm chart renders from deploy/helm/values.yaml (Kubernetes). The values themselves validate against
the chart's values schema (tests/fixtures/dagster_helm_values.schema.json).

There is no Helm here: `render_instance` writes the chart's dagster.yaml from the values the way the
chart's templates do (templates/configmap-instance.yaml and templates/helpers/instance/*.tpl, for the
keys values.yaml sets). The K8sRunLauncher needs a cluster to start, so its config is validated against
its config schema and it is never instantiated.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import jsonschema
import psycopg
import pytest
import yaml
from dagster._config import validate_config
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.utils import make_new_run_id
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_k8s import K8sRunLauncher
from dagster_postgres import PostgresRunStorage
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from metrify_assets.ingestion.kafka.ranges import OffsetRange
from metrify_assets.ingestion.kafka.sensor import range_request
from metrify_assets.orchestration.instance import dagster_yaml
from metrify_assets.resources import PostgresResource
from metrify_platform.launcher import WarmRunLauncher

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DAGSTER_YAML = ROOT / "deploy" / "dagster.yaml"
HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"
CHART_SCHEMA = ROOT / "tests" / "fixtures" / "dagster_helm_values.schema.json"
# The chart's values schema points at Kubernetes definitions on kubernetesjsonschema.dev; offline they
# come from kubernetes-validate's copy (strict: a misspelt field in a pod spec is an error).
K8S_DEFINITIONS_URL = "https://kubernetesjsonschema.dev/v1.18.0/_definitions.json"
K8S_VERSION = "1.35.0"
# Definitions inside lists keep their `required`: Helm replaces a list whole, the chart's defaults do
# not fill an item in (see `merged_values_schema`).
LIST_ITEMS = {"UserDeployment", "Image", "UserDeploymentIncludeConfigInLaunchedRuns", "TagConcurrencyLimit"}
# The chart's defaults for what values.yaml leaves unset, and the names docs/deploy.md installs with.
RELEASE, NAMESPACE = "dagster", "metrify"
CHART_DEFAULTS = {"dagsterHome": "/opt/dagster/dagster_home", "serviceAccountName": "dagster"}


def merged_values_schema() -> dict[str, Any]:
    """The chart's schema as it applies to an override file: Helm validates the chart's defaults merged
    with the overrides, and the defaults hold every required key, so `required` is dropped from the
    definitions that maps merge into. Unknown keys (additionalProperties), types and enums still apply."""
    schema = json.loads(CHART_SCHEMA.read_text())
    for name, definition in schema["definitions"].items():
        if name not in LIST_ITEMS:
            definition.pop("required", None)
    schema.pop("required")
    return schema


@pytest.fixture(scope="module")
def values_validator() -> jsonschema.Draft7Validator:
    definitions = schema_contents(
        f"kubernetes-json-schema/v{K8S_VERSION}-local-strict/_definitions.json", K8S_VERSION
    )
    k8s = Resource.from_contents(
        {"definitions": definitions["$defs"], "$defs": definitions["$defs"]}, default_specification=DRAFT7
    )
    registry: Registry[Any] = Registry().with_resource(K8S_DEFINITIONS_URL, k8s)
    return jsonschema.Draft7Validator(merged_values_schema(), registry=registry)


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return dict(yaml.safe_load(HELM_VALUES.read_text()))


def test_helm_values_validate_against_the_charts_schema(
    values_validator: jsonschema.Draft7Validator, values: dict[str, Any]
) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in values_validator.iter_errors(values)]
    assert errors == []


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (
            ["runLauncher", "config", "k8sRunLauncher", "envSecret"],
            [{"name": "metrify-secrets"}],
        ),  # misspelt key
        (["dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator", "maxConcurrentRuns"], "24"),
        (["runLauncher", "config", "k8sRunLauncher", "resources", "request"], {"cpu": "1"}),  # K8s field
    ],
)
def test_the_chart_schema_rejects_a_mistake(
    values_validator: jsonschema.Draft7Validator, values: dict[str, Any], path: list[str], bad: object
) -> None:
    broken = copy.deepcopy(values)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    assert list(values_validator.iter_errors(broken))


def render_instance(values: dict[str, Any]) -> dict[str, Any]:
    """The dagster.yaml Dagster's chart renders from `values` (its instance ConfigMap)."""
    pg = values["postgresql"]
    postgres_db = {
        "username": pg["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"],
        "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"],
        "params": pg["postgresqlParams"],
        "scheme": pg["postgresqlScheme"],
    }
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    k8s_config = launcher["runK8sConfig"]
    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    monitoring = daemon["runMonitoring"]
    s3_logs = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    retention = values["retention"]
    instance = {
        "scheduler": {"module": "dagster.core.scheduler", "class": "DagsterDaemonScheduler"},
        **{
            section: {
                "module": f"dagster_postgres.{module}",
                "class": cls,
                "config": {"postgres_db": postgres_db},
            }
            for section, module, cls in (
                ("schedule_storage", "schedule_storage", "PostgresScheduleStorage"),
                ("run_storage", "run_storage", "PostgresRunStorage"),
                ("event_log_storage", "event_log", "PostgresEventLogStorage"),
            )
        },
        "run_launcher": {
            "module": "dagster_k8s",
            "class": "K8sRunLauncher",
            "config": {
                "load_incluster_config": launcher["loadInclusterConfig"],
                "job_namespace": launcher.get("jobNamespace") or NAMESPACE,
                "image_pull_policy": launcher["imagePullPolicy"],
                "service_account_name": CHART_DEFAULTS["serviceAccountName"],
                "dagster_home": CHART_DEFAULTS["dagsterHome"],
                "instance_config_map": f"{RELEASE}-instance",
                "postgres_password_secret": values["global"]["postgresqlSecretName"],
                "env_config_maps": [c["name"] for c in launcher["envConfigMaps"]],
                "env_secrets": [s["name"] for s in launcher["envSecrets"]],
                "env_vars": launcher["envVars"],
                "labels": launcher["labels"],
                "resources": launcher["resources"],
                "security_context": launcher["securityContext"],
                "run_k8s_config": {"job_spec_config": k8s_config["jobSpecConfig"]},
            },
        },
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": queued["maxConcurrentRuns"],
                "tag_concurrency_limits": queued["tagConcurrencyLimits"],
                "dequeue_interval_seconds": queued["dequeueIntervalSeconds"],
                "dequeue_use_threads": queued["dequeueUseThreads"],
                "dequeue_num_workers": queued["dequeueNumWorkers"],
            },
        },
        "compute_logs": {
            "module": "dagster_aws.s3.compute_log_manager",
            "class": "S3ComputeLogManager",
            "config": {"bucket": s3_logs["bucket"], "prefix": s3_logs["prefix"], "verify": True},
        },
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
        },
        "sensors": {
            "use_threads": daemon["sensors"]["useThreads"],
            "num_workers": daemon["sensors"]["numWorkers"],
        },
        "schedules": {
            "use_threads": daemon["schedules"]["useThreads"],
            "num_workers": daemon["schedules"]["numWorkers"],
        },
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
        "retention": {
            kind: {"purge_after_days": retention[kind]["purgeAfterDays"]} for kind in ("sensor", "schedule")
        },
    }
    assert not daemon["runRetries"]["enabled"]  # rendered from additionalInstanceConfig instead
    return {**instance, **values["additionalInstanceConfig"]}


@pytest.fixture(scope="module")
def dagster_db_url(pg_resource: PostgresResource) -> str:
    """A database of its own for Dagster's tables in the session's embedded PostgreSQL, as in a
    deployment (Dagster's runs and events never share Metrify's database)."""
    url = pg_resource.get_url()
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'dagster_deploy'").fetchone():
            conn.execute("CREATE DATABASE dagster_deploy")
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg2", path="/dagster_deploy"))


def load_instance(directory: Path, config: dict[str, Any] | str) -> dg.DagsterInstance:
    text = config if isinstance(config, str) else yaml.safe_dump(config)
    (directory / "dagster.yaml").write_text(text)
    return dg.DagsterInstance.from_config(str(directory))


def assert_runs_land_in(instance: dg.DagsterInstance, url: str) -> None:
    """A run the instance stores is counted back through it and is a row of Dagster's `runs` table in
    the database at `url`, and so is an event of it (stored with a NOTIFY, which the wrong driver
    refuses): the storage is that PostgreSQL, its tables exist, and it is written."""
    run = instance.add_run(dg.DagsterRun(job_name="deploy_check", run_id=make_new_run_id()))
    try:
        assert instance.get_runs_count(dg.RunsFilter(run_ids=[run.run_id])) == 1
        instance.report_engine_event("deploy check", run)
        with psycopg.connect(url.replace("+psycopg2", "", 1)) as conn:
            row = conn.execute("SELECT pipeline_name FROM runs WHERE run_id = %s", (run.run_id,)).fetchone()
            events = conn.execute(
                "SELECT count(*) FROM event_logs WHERE run_id = %s", (run.run_id,)
            ).fetchone()
        assert row == ("deploy_check",)
        assert events == (1,)
    finally:
        instance.delete_run(run.run_id)
    assert instance.get_runs_count(dg.RunsFilter(run_ids=[run.run_id])) == 0


def test_single_machine_instance_loads_and_connects(
    tmp_path: Path, dagster_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRIFY_DAGSTER_POSTGRES_URL", dagster_db_url)
    instance = load_instance(tmp_path, DEPLOY_DAGSTER_YAML.read_text())
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert_runs_land_in(instance, dagster_db_url)
        assert isinstance(instance.run_launcher, WarmRunLauncher)
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        assert coordinator.get_run_queue_config().max_concurrent_runs == 4
        assert instance.run_monitoring_enabled and instance.run_retries_max_retries == 2
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        assert not instance.nux_enabled  # no "join the community" dialog over the UI
    finally:
        instance.dispose()


def test_the_local_instance_shows_the_ui_without_a_dialog(tmp_path: Path) -> None:
    instance = load_instance(tmp_path, dagster_yaml(tmp_path))
    try:
        assert not instance.nux_enabled and not instance.telemetry_enabled
    finally:
        instance.dispose()


def postgres_db_for(url: str) -> dict[str, Any]:
    """`postgres_db` fields that reach the server at `url` (pgserver listens on a Unix socket)."""
    parts = urlsplit(url)
    query = dict(p.split("=", 1) for p in parts.query.split("&") if p)
    return {
        "username": parts.username,
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": parts.hostname or "",
        "db_name": parts.path.lstrip("/"),
        "port": parts.port or 5432,
        "params": query,
        "scheme": parts.scheme,
    }


def test_helm_rendered_instance_loads_and_connects(
    values: dict[str, Any], tmp_path: Path, dagster_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = render_instance(values)
    # The chart's storage, aimed at the test server instead of the production host.
    for section in ("schedule_storage", "run_storage", "event_log_storage"):
        rendered[section]["config"]["postgres_db"] = postgres_db_for(dagster_db_url)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")
    instance = load_instance(tmp_path, rendered)
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert_runs_land_in(instance, dagster_db_url)
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        queue = coordinator.get_run_queue_config()
        assert queue.max_concurrent_runs == 24
        limits = {
            (limit["key"], json.dumps(limit.get("value"))): limit["limit"]
            for limit in queue.tag_concurrency_limits
        }
        assert limits[("metrify/kafka_topic", '{"applyLimitPerUniqueValue": true}')] == 12
        assert limits[("metrify/warehouse", '"dbt"')] == 1
        assert instance.run_monitoring_enabled and instance.run_monitoring_start_timeout_seconds == 300
        assert instance.run_retries_max_retries == 2
        assert instance.run_retries_retry_on_asset_or_op_failure is False
    finally:
        instance.dispose()


def test_helm_run_launcher_and_compute_logs_fit_their_schemas(values: dict[str, Any]) -> None:
    rendered = render_instance(values)
    for cls, section in ((K8sRunLauncher, "run_launcher"), (S3ComputeLogManager, "compute_logs")):
        result = validate_config(cls.config_type(), rendered[section]["config"])
        assert result.success, [e.message for e in result.errors or []]
    broken = {**rendered["run_launcher"]["config"], "env_config_maps": "metrify-env"}  # a string, not a list
    assert not validate_config(K8sRunLauncher.config_type(), broken).success


def test_ingest_runs_carry_the_tag_the_kafka_limit_counts(values: dict[str, Any]) -> None:
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    (kafka_limit,) = [
        limit for limit in queued["tagConcurrencyLimits"] if limit["key"] == "metrify/kafka_topic"
    ]
    request = range_request("meter_readings", OffsetRange("metrify.meter-readings.v1", 3, 0, 100), "key")
    assert request.tags[kafka_limit["key"]] == "metrify.meter-readings.v1"
    assert kafka_limit["value"] == {"applyLimitPerUniqueValue": True}  # each topic counted apart


def test_dbt_runs_carry_the_tag_the_warehouse_limit_counts(values: dict[str, Any]) -> None:
    from metrify_assets.schedules import daily_marts_job, refresh_job

    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    (dbt_limit,) = [limit for limit in queued["tagConcurrencyLimits"] if limit["limit"] == 1]
    for job in (refresh_job, daily_marts_job):
        assert (job.tags or {}).get(dbt_limit["key"]) == dbt_limit["value"], job.name
