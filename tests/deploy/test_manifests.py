"""deploy/k8s and deploy/docker hold together: every manifest validates offline against the Kubernetes
schemas (strict: an unknown field is an error), the manifests point at one another, at the API's
routes, at the CLI and at settings Metrify reads, and the image runs what they run.

ServiceMonitor (servicemonitor.yaml) is the Prometheus Operator's CRD, not in the core schemas: it is
checked here for what it selects and for producing the scrape jobs the alert rules select on, not
validated.
"""

from __future__ import annotations

import ast
import copy
import importlib
import importlib.util
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"
PROMETHEUS = ROOT / "deploy" / "prometheus"
VENV_BIN = Path(sys.executable).parent

# The newest Kubernetes release kubernetes-validate 1.37 ships schemas for, and the oldest of the three
# minor releases upstream still supports beside it.
K8S_VERSIONS = ("1.35", "1.37")
NOT_APPLIED = {"kustomization.yaml", "secret.example.yaml", "servicemonitor.yaml"}
CRD_GROUPS = ("monitoring.coreos.com/",)
# Variables read by libraries, not by metrify_assets/env.py: boto3's region, and the Dagster instance
# the chart renders (its home and its database password).
LIBRARY_VARIABLES = {"AWS_REGION", "DAGSTER_HOME", "DAGSTER_PG_PASSWORD"}
SECRETS = {
    "METRIFY_POSTGRES_URL",
    "KAFKA_SASL_PASSWORD",
    "METRIFY_SNOWFLAKE_PASSWORD",
    "METRIFY_API_JWT_SECRET",
    "REDIS_URL",
    "METRIFY_ALERT_WEBHOOK_SECRET",
    "METRIFY_ALERT_SLACK_WEBHOOK_URL",
    "METRIFY_ALERT_SMTP_PASSWORD",
}
# The chart's instance ConfigMap for the release `dagster` (docs/deploy.md installs it under that name).
DAGSTER_INSTANCE_CONFIGMAP = "dagster-instance"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict[str, Any]]]:
    return {p.name: load_all(p) for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"}


def of_kind(manifests: dict[str, list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [doc for docs in manifests.values() for doc in docs if doc["kind"] == kind]


def named(manifests: dict[str, list[dict[str, Any]]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in of_kind(manifests, kind) if d["metadata"]["name"] == name]
    return doc


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


def arg_after(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_core_manifest_validates_strictly(
    manifests: dict[str, list[dict[str, Any]]], version: str
) -> None:
    checked = 0
    for name, docs in manifests.items():
        for doc in docs:
            if doc["apiVersion"].startswith(CRD_GROUPS):
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(
                    f"{name}: {doc['kind']}/{doc['metadata']['name']}: {err.message} at {list(err.path)}"
                )
            checked += 1
    assert checked >= 10  # namespace, configmap, 2 secrets, 2 deployments, 2 services, hpa, pdb, policy


def test_strict_validation_rejects_an_unknown_field(manifests: dict[str, list[dict[str, Any]]]) -> None:
    deployment = copy.deepcopy(named(manifests, "Deployment", "metrify-api"))
    containers(deployment)[0]["readinessProbes"] = containers(deployment)[0].pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_kustomization_applies_every_workload_and_never_the_templates() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")}
    assert set(kustomization["resources"]) == files - NOT_APPLIED
    assert kustomization["namespace"] == "metrify"


def test_services_select_their_deployments_on_named_ports(manifests: dict[str, list[dict[str, Any]]]) -> None:
    deployments = of_kind(manifests, "Deployment")
    for service in of_kind(manifests, "Service"):
        selector = service["spec"]["selector"]
        (target,) = [
            d for d in deployments if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert selector.items() <= target["spec"]["selector"]["matchLabels"].items()
        port_names = {p["name"] for c in containers(target) for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (service["metadata"]["name"], port)


def test_deployment_selectors_match_their_pods(manifests: dict[str, list[dict[str, Any]]]) -> None:
    for deployment in of_kind(manifests, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_autoscaler_and_disruption_budget_keep_the_api_up(manifests: dict[str, list[dict[str, Any]]]) -> None:
    api = named(manifests, "Deployment", "metrify-api")
    hpa = named(manifests, "HorizontalPodAutoscaler", "metrify-api")
    pdb = named(manifests, "PodDisruptionBudget", "metrify-api")
    assert (hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"]) == (
        "Deployment",
        "metrify-api",
    )
    assert "replicas" not in api["spec"]  # the autoscaler owns the count
    assert pdb["spec"]["selector"]["matchLabels"] == api["spec"]["selector"]["matchLabels"]
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]  # a drain never blocks


def test_every_container_has_requests_and_a_memory_limit(manifests: dict[str, list[dict[str, Any]]]) -> None:
    for deployment in of_kind(manifests, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys()
            assert "memory" in resources["limits"]
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.fixture(scope="module")
def api_paths() -> set[str]:
    from metrify_assets.env import resolve_settings
    from metrify_assets.serving.app import create_app

    app = create_app(resolve_settings({"METRIFY_API_JWT_SECRET": "x" * 32}))
    return set(app.openapi()["paths"])


def test_api_probes_are_routes_of_the_api(
    manifests: dict[str, list[dict[str, Any]]], api_paths: set[str]
) -> None:
    (api,) = containers(named(manifests, "Deployment", "metrify-api"))
    probes = {
        kind: api[kind]["httpGet"]["path"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert probes == {"startupProbe": "/healthz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    assert set(probes.values()) | {"/metrics"} <= api_paths
    assert {p["port"] for p in (api[k]["httpGet"] for k in probes)} == {"http"}


def test_api_command_is_the_uvicorn_factory_on_its_port(manifests: dict[str, list[dict[str, Any]]]) -> None:
    (api,) = containers(named(manifests, "Deployment", "metrify-api"))
    command = api["command"]
    assert (VENV_BIN / command[0]).exists()
    module, attribute = command[command.index("--factory") + 1].split(":")
    assert callable(getattr(importlib.import_module(module), attribute))
    assert int(arg_after(command, "--port")) == api["ports"][0]["containerPort"]


def test_exporter_command_is_the_cli_on_its_port(manifests: dict[str, list[dict[str, Any]]]) -> None:
    from metrify_assets.cli.main import app

    (exporter,) = containers(named(manifests, "Deployment", "metrify-metrics"))
    program, group, command, *args = exporter["command"]
    assert program in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    cli = typer.main.get_group(app)
    with typer.Context(cli) as ctx:
        serve = cli.get_command(ctx, group).commands[command]  # type: ignore[union-attr]
    options = {opt for param in serve.params for opt in param.opts}
    assert {a for a in args if a.startswith("--")} <= options
    assert int(arg_after(args, "--port")) == exporter["ports"][0]["containerPort"]
    assert named(manifests, "Deployment", "metrify-metrics")["spec"]["replicas"] == 1


def test_network_policy_admits_only_the_monitoring_namespace_to_the_exporter(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    (policy,) = of_kind(manifests, "NetworkPolicy")
    exporter = named(manifests, "Deployment", "metrify-metrics")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        exporter["spec"]["template"]["metadata"]["labels"].items()
    )
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    ports = {p["name"] for c in containers(exporter) for p in c["ports"]}
    assert [p["port"] for p in rule["ports"]] == ["metrics"] and "metrics" in ports


def test_service_monitors_scrape_named_service_ports(manifests: dict[str, list[dict[str, Any]]]) -> None:
    services = {s["metadata"]["labels"]["app.kubernetes.io/name"]: s for s in of_kind(manifests, "Service")}
    monitors = of_kind(manifests, "ServiceMonitor")
    selected = [services[m["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]] for m in monitors]
    assert {s["metadata"]["name"] for s in selected} == {s["metadata"]["name"] for s in services.values()}
    for monitor, service in zip(monitors, selected, strict=True):
        ports = {p["name"] for p in service["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports


def operator_job(service: dict[str, Any], endpoint: dict[str, Any]) -> str:
    """The `job` label the Prometheus Operator gives the endpoint's targets: the Service's name, unless
    the endpoint's relabelings (applied after the operator's own) replace it."""
    job = str(service["metadata"]["name"])
    for relabeling in endpoint.get("relabelings", []):
        if relabeling.get("targetLabel") == "job" and relabeling.get("action", "replace") == "replace":
            assert "sourceLabels" not in relabeling, "a job taken from a label is not fixed"
            job = relabeling["replacement"]
    return job


def test_service_monitors_reproduce_the_scrape_jobs_the_alert_rules_select_on(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    """Under the operator, each endpoint must yield the same job as deploy/prometheus/prometheus.yml, with
    its honor_labels, params and metric_relabel_configs: otherwise the exporter alerts fire forever
    (absent job), the Dagster `job` label becomes exported_job, or every API pod queries the database."""
    rule_jobs = set(re.findall(r'job="([^"]+)"', (PROMETHEUS / "rules.yml").read_text()))
    assert rule_jobs == {"metrify-pipeline", "metrify-api"}
    scrape_configs = {
        c["job_name"]: c
        for c in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    }
    services = {s["metadata"]["labels"]["app.kubernetes.io/name"]: s for s in of_kind(manifests, "Service")}
    endpoints = {
        operator_job(service, endpoint): endpoint
        for monitor in of_kind(manifests, "ServiceMonitor")
        for service in [services[monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]]]
        for endpoint in monitor["spec"]["endpoints"]
    }
    assert set(endpoints) == set(scrape_configs) and rule_jobs <= set(endpoints)
    for job, endpoint in endpoints.items():
        plain = scrape_configs[job]
        assert endpoint.get("honorLabels", False) == plain.get("honor_labels", False), job
        assert endpoint.get("params") == plain.get("params"), job
        assert endpoint["path"] == plain["metrics_path"], job
        assert [
            (r["action"], r["sourceLabels"], r["regex"]) for r in endpoint.get("metricRelabelings", [])
        ] == [(r["action"], r["source_labels"], r["regex"]) for r in plain.get("metric_relabel_configs", [])]
    assert endpoints["metrify-pipeline"]["honorLabels"] is True
    assert endpoints["metrify-api"]["params"] == {"scope": ["api"]}


def settings_read_by_env_py() -> set[str]:
    """Every variable name metrify_assets/env.py reads: its upper-case string constants."""
    tree = ast.parse((ROOT / "metrify_assets" / "env.py").read_text())
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.isupper()
        and node.value.replace("_", "").isalnum()
    }


def environment_names(manifests: dict[str, list[dict[str, Any]]]) -> dict[str, set[str]]:
    """Variable names set anywhere: the ConfigMap, the Secret template, the containers' env, the
    Helm values' code location and run pods."""
    values = yaml.safe_load(HELM_VALUES.read_text())
    (code_location,) = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    return {
        "configmap": set(named(manifests, "ConfigMap", "metrify-env")["data"]),
        "secret": set(named(manifests, "Secret", "metrify-secrets")["stringData"]),
        "containers": {
            e["name"]
            for d in of_kind(manifests, "Deployment")
            for c in containers(d)
            for e in c.get("env", [])
        },
        "helm": set(code_location["env"]) | {v.split("=", 1)[0] for v in launcher["envVars"]},
    }


def test_every_variable_set_is_one_metrify_reads(manifests: dict[str, list[dict[str, Any]]]) -> None:
    known = settings_read_by_env_py() | LIBRARY_VARIABLES
    for where, names in environment_names(manifests).items():
        assert names - known == set(), where


def test_secrets_are_only_in_the_secret(manifests: dict[str, list[dict[str, Any]]]) -> None:
    names = environment_names(manifests)
    assert names["secret"] >= SECRETS
    assert not SECRETS & (names["configmap"] | names["containers"] | names["helm"])
    assert not [k for k in keys(yaml.safe_load(HELM_VALUES.read_text())) if "password" in k.lower()], (
        "a password in the Helm values"
    )


def keys(tree: Any) -> list[str]:
    """Every mapping key in a parsed YAML tree, but the chart's switch for its own password Secret."""
    if isinstance(tree, dict):
        own = [k for k in tree if k != "generatePostgresqlPasswordSecret"]
        return own + [k for v in tree.values() for k in keys(v)]
    if isinstance(tree, list):
        return [k for v in tree for k in keys(v)]
    return []


def test_the_settings_resolve_as_configured(manifests: dict[str, list[dict[str, Any]]]) -> None:
    from metrify_assets.env import resolve_settings

    environ = {
        **named(manifests, "ConfigMap", "metrify-env")["data"],
        **named(manifests, "Secret", "metrify-secrets")["stringData"],
    }
    settings = resolve_settings(environ)
    assert settings.dbt_target == "snowflake"
    assert settings.uses_kafka and settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_password_set and settings.snowflake.password_set
    assert settings.lake_url.startswith("s3://") and settings.postgres_url
    assert settings.api.auth_configured and settings.alerts.webhook_url is None


def test_references_resolve_to_the_configmap_and_secrets(manifests: dict[str, list[dict[str, Any]]]) -> None:
    configmaps = {d["metadata"]["name"] for d in of_kind(manifests, "ConfigMap")} | {
        DAGSTER_INSTANCE_CONFIGMAP
    }
    secrets = {d["metadata"]["name"]: d["stringData"] for d in of_kind(manifests, "Secret")}
    for deployment in of_kind(manifests, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for source in container["envFrom"]:
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps
                else:
                    assert source["secretRef"]["name"] in secrets
            for env in container.get("env", []):
                if "valueFrom" in env:
                    ref = env["valueFrom"]["secretKeyRef"]
                    assert ref["key"] in secrets[ref["name"]]
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounts == {v["name"] for v in pod.get("volumes", [])}
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps
    values = yaml.safe_load(HELM_VALUES.read_text())
    assert values["global"]["postgresqlSecretName"] in secrets


def test_one_image_everywhere(manifests: dict[str, list[dict[str, Any]]]) -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    expected = f"{image['name']}:{image['newTag']}"
    for deployment in of_kind(manifests, "Deployment"):
        assert {c["image"] for c in containers(deployment)} == {expected}
    (code_location,) = yaml.safe_load(HELM_VALUES.read_text())["dagster-user-deployments"]["deployments"]
    assert f"{code_location['image']['repository']}:{code_location['image']['tag']}" == expected


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_copies_files_that_exist() -> None:
    copies = [
        args for op, args in dockerfile_instructions() if op == "COPY" and not args.startswith("--from")
    ]
    assert copies
    for args in copies:
        *sources, _dest = shlex.split(args)
        for source in sources:
            assert (ROOT / source).exists(), source


def test_dockerfile_installs_the_lock_with_the_k8s_extra() -> None:
    runs = [args for op, args in dockerfile_instructions() if op == "RUN" and "uv sync" in args]
    assert runs and all("--locked" in r and "--extra k8s" in r and "--no-dev" in r for r in runs)
    assert "k8s" in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any("dbt parse" in args for op, args in dockerfile_instructions() if op == "RUN")


def test_dockerfile_runs_as_the_manifests_non_root_user(manifests: dict[str, list[dict[str, Any]]]) -> None:
    (user,) = [args for op, args in dockerfile_instructions() if op == "USER"]
    uid = int(user.split(":")[0])
    assert uid != 0
    for deployment in of_kind(manifests, "Deployment"):
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid
    for op, args in dockerfile_instructions():
        if op in ("ENV", "ARG"):
            assert not any(word in args.upper() for word in ("PASSWORD", "SECRET", "TOKEN")), args


def test_dockerfile_command_serves_the_code_location_the_chart_serves() -> None:
    (cmd,) = [args for op, args in dockerfile_instructions() if op == "CMD"]
    argv = yaml.safe_load(cmd)  # the exec form is a JSON array
    assert (VENV_BIN / argv[0]).exists()
    module = arg_after(argv, "--module-name")
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    top_level = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)} | {
        t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
    }
    assert arg_after(argv, "--attribute") in top_level
    (code_location,) = yaml.safe_load(HELM_VALUES.read_text())["dagster-user-deployments"]["deployments"]
    grpc_args = code_location["dagsterApiGrpcArgs"]
    assert (arg_after(grpc_args, "--module-name"), arg_after(grpc_args, "--attribute")) == (
        module,
        arg_after(argv, "--attribute"),
    )
    assert int(arg_after(argv, "--port")) == code_location["port"]
