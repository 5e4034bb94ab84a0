"""Routing by team (deploy/alertmanager/alertmanager.yml): every Prometheus alert names a known team,
`amtool` routes each one to that team's receiver, and a running Alertmanager (Debian's
`prometheus-alertmanager`) holds back the lesser twin of a graver alert. In CI a missing binary
fails, elsewhere it skips."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from metrify_assets.teams import GRID_OPERATIONS, TEAM_BY_ALERT_KIND, TEAMS
from metrify_platform.kafka_broker import free_port
from tests.conftest import IN_CI
from tests.deploy.test_alert_rules import alerts

ROOT = Path(__file__).parents[2]
CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def binary(*names: str) -> str:
    """The first of `names` on the PATH (Debian calls Alertmanager `prometheus-alertmanager`)."""
    path = next((p for name in names if (p := shutil.which(name)) is not None), None)
    if path is None:
        msg = f"{' or '.join(names)} is not installed (apt-get install prometheus-alertmanager)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def receiver_for(labels: dict[str, str]) -> str:
    """The receiver `amtool` routes an alert with `labels` to."""
    proc = subprocess.run(
        [binary("amtool"), "config", "routes", "test", f"--config.file={CONFIG}"]
        + [f"{k}={v}" for k, v in labels.items()],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return proc.stdout.strip()


def test_the_config_passes_amtool_check() -> None:
    proc = subprocess.run(
        [binary("amtool"), "check-config", str(CONFIG)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_names_a_known_team_and_reaches_its_receiver() -> None:
    rules = alerts()
    assert len(rules) == 26
    for rule in rules:
        labels = rule["labels"]
        assert labels["team"] in TEAMS, rule["alert"]
        expected = labels["team"]
        if labels["team"] == GRID_OPERATIONS and labels["severity"] == "critical":
            expected = "grid-operations-page"  # an emergency pages
        assert receiver_for({"alertname": rule["alert"], **labels}) == expected, rule["alert"]
    # An alert without a team (someone else's rule) reaches the platform's on-call.
    assert receiver_for({"alertname": "SomeoneElses", "severity": "critical"}) == "data-platform"


def test_every_team_has_a_receiver() -> None:
    receivers = {r["name"] for r in yaml.safe_load(CONFIG.read_text())["receivers"]}
    assert set(TEAMS) <= receivers
    assert set(TEAM_BY_ALERT_KIND.values()) <= set(TEAMS)


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running Alertmanager on the shipped config; its base URL. Its e-mails and webhooks go to
    example.invalid and fail, which changes nothing of what it routes and inhibits."""
    port = free_port()
    process = subprocess.Popen(
        [
            binary("prometheus-alertmanager", "alertmanager"),
            f"--config.file={CONFIG}",
            f"--storage.path={tmp_path_factory.mktemp('alertmanager')}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # one instance: no gossip port
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _, err = process.communicate(timeout=10)
                pytest.fail(f"Alertmanager did not start: {err.decode(errors='replace')[-2000:]}")
            time.sleep(0.2)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def post_alerts(url: str, alerts: list[dict[str, str]]) -> None:
    body = json.dumps([{"labels": labels} for labels in alerts]).encode()
    request = urllib.request.Request(
        f"{url}/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def fired(url: str) -> dict[tuple[str, str], dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=10) as response:
        found: list[dict[str, Any]] = json.load(response)
    return {
        (a["labels"]["alertname"], a["labels"].get("grid_node_id", a["labels"].get("source", ""))): a
        for a in found
    }


def test_alertmanager_routes_by_team_and_holds_back_the_lesser_twin(alertmanager: str) -> None:
    """GN-1 in emergency and in alert: the alert-state notice is held back while the emergency
    pages; GN-2 only in alert is sent to the grid team; a quality alert goes to data quality."""
    post_alerts(
        alertmanager,
        [
            {"alertname": "MetrifyGridEmergency", "grid_node_id": "GN-1", "severity": "critical", "team": "grid-operations"},
            {"alertname": "MetrifyGridAlertState", "grid_node_id": "GN-1", "severity": "warning", "team": "grid-operations"},
            {"alertname": "MetrifyGridAlertState", "grid_node_id": "GN-2", "severity": "warning", "team": "grid-operations"},
            {"alertname": "MetrifyQualityScoreLow", "source": "meter_readings", "severity": "warning", "team": "data-quality"},
        ],
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:  # inhibitions are computed as the alerts arrive; give it a moment
        alerts = fired(alertmanager)
        held = alerts.get(("MetrifyGridAlertState", "GN-1"), {}).get("status", {}).get("inhibitedBy")
        if held or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(alerts) == 4
    receivers = {key: [r["name"] for r in a["receivers"]] for key, a in alerts.items()}
    assert receivers == {
        ("MetrifyGridEmergency", "GN-1"): ["grid-operations-page"],
        ("MetrifyGridAlertState", "GN-1"): ["grid-operations"],
        ("MetrifyGridAlertState", "GN-2"): ["grid-operations"],
        ("MetrifyQualityScoreLow", "meter_readings"): ["data-quality"],
    }
    states = {key: a["status"]["state"] for key, a in alerts.items()}
    assert states[("MetrifyGridAlertState", "GN-1")] == "suppressed"
    assert alerts[("MetrifyGridAlertState", "GN-1")]["status"]["inhibitedBy"] == [
        alerts[("MetrifyGridEmergency", "GN-1")]["fingerprint"]
    ]
    assert states[("MetrifyGridAlertState", "GN-2")] == "active"
    assert states[("MetrifyGridEmergency", "GN-1")] == "active"
    assert states[("MetrifyQualityScoreLow", "meter_readings")] == "active"
