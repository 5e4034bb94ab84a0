"""`metrify alerts` against a real PostgreSQL, a real webhook receiver and a real SMTP server."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from metrify_assets.alerts.store import Alert, get, raise_alert
from metrify_assets.cli.main import app
from metrify_assets.resources import PostgresResource
from tests.alerts.conftest import SECRET
from tests.alerts.receivers import HttpReceiver, SmtpReceiver

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def env(tmp_path: Path, pg_resource: PostgresResource, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The CLI on the test database, with no alert channel configured (tests add theirs)."""
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    for name in ("WEBHOOK_URL", "WEBHOOK_SECRET", "SLACK_WEBHOOK_URL", "SMTP_HOST", "MIN_SEVERITY"):
        monkeypatch.delenv(f"METRIFY_ALERT_{name}", raising=False)
    return monkeypatch


def channels_env(env: pytest.MonkeyPatch, webhook: HttpReceiver, smtp: SmtpReceiver) -> None:
    env.setenv("METRIFY_ALERT_WEBHOOK_URL", webhook.url)
    env.setenv("METRIFY_ALERT_WEBHOOK_SECRET", SECRET)
    env.setenv("METRIFY_ALERT_SMTP_HOST", "127.0.0.1")
    env.setenv("METRIFY_ALERT_SMTP_PORT", str(smtp.port))
    env.setenv("METRIFY_ALERT_SMTP_USER", "metrify")
    env.setenv("METRIFY_ALERT_SMTP_PASSWORD", "mail-password")
    env.setenv("METRIFY_ALERT_SMTP_FROM", "metrify@example.org")
    env.setenv("METRIFY_ALERT_SMTP_TO", "ops@example.org,grid@example.org")


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_list_ack_resolve_and_send(
    pg: psycopg.Connection,
    env: pytest.MonkeyPatch,
    http_receiver: Callable[..., HttpReceiver],
    smtp_receiver: SmtpReceiver,
) -> None:
    node = raise_alert(
        pg, Alert("grid_state", "critical", "grid node N1", "grid_state:N1", "N1 in emergency"), at=T0
    )
    score = raise_alert(
        pg, Alert("quality", "warning", "weather_observations", "quality:weather", "score 61 < 95")
    )
    pg.commit()

    listed = invoke("alerts", "list")
    assert "grid node N1" in listed and "weather_observations" in listed and "N1 in emergency" in listed
    assert "2026-01-05 12:00:00" in listed
    only_quality = invoke("alerts", "list", "--kind", "quality", "--json")
    assert [a["alert_id"] for a in json.loads(only_quality)] == [score.alert_id]

    # Nothing configured: nothing is sent, and the command says how to configure it.
    assert "no alert channel configured" in invoke("alerts", "send")

    webhook = http_receiver(secret=SECRET)
    channels_env(env, webhook, smtp_receiver)
    sent = invoke("alerts", "send")
    assert "delivering to webhook, email (alerts at or above warning)" in sent
    assert f"delivered webhook opened #{node.alert_id} [critical] grid node N1 (1 attempt)" in sent
    assert "delivered 4 (webhook 2, email 2)" in sent
    assert [r.signature_ok for r in webhook.received] == [True, True]
    assert len(smtp_receiver.messages) == 2
    shown = {a["alert_id"]: a for a in json.loads(invoke("alerts", "list", "--json"))}
    assert [
        (d["channel"], d["event"], d["status"], d["attempts"]) for d in shown[node.alert_id]["deliveries"]
    ] == [
        ("email", "opened", "delivered", 1),
        ("webhook", "opened", "delivered", 1),
    ]
    assert "webhook opened ok" in invoke("alerts", "list")

    acked = invoke("alerts", "ack", str(node.alert_id), "--note", "crew on the way")
    assert acked.startswith(
        f"acked: #{node.alert_id} [critical] grid node N1: N1 in emergency (by {getpass.getuser()})"
    )
    assert [a["alert_id"] for a in json.loads(invoke("alerts", "list", "--status", "acked", "--json"))] == [
        node.alert_id
    ]
    resolved = invoke("alerts", "resolve", str(node.alert_id), "--by", "ana", "--note", "breaker reset")
    assert resolved.startswith(f"resolved: #{node.alert_id}") and "(by ana)" in resolved
    row = get(pg, node.alert_id)
    assert (row.acked_by, row.ack_note, row.resolved_by, row.resolution) == (
        getpass.getuser(),
        "crew on the way",
        "ana",
        "breaker reset",
    )

    again = invoke("alerts", "send")
    assert (
        f"delivered webhook resolved #{node.alert_id}" in again
        and "delivered 2 (webhook 1, email 1)" in again
    )
    assert webhook.received[-1].json["event"] == "resolved"
    assert "nothing to deliver (webhook, email)" in invoke("alerts", "send")
    resolved_list = json.loads(invoke("alerts", "list", "--status", "resolved", "--json"))
    assert [(a["alert_id"], a["status"]) for a in resolved_list] == [(node.alert_id, "resolved")]

    missing = CliRunner().invoke(app, ["alerts", "ack", "999999"])
    assert missing.exit_code == 1 and "no alert 999999" in missing.output
    assert CliRunner().invoke(app, ["alerts", "list", "--status", "bogus"]).exit_code == 2
    unknown = CliRunner().invoke(app, ["alerts", "list", "--kind", "grid"])
    assert unknown.exit_code == 2 and "--kind must be one of grid_state, kafka_expired" in unknown.output


def test_send_exits_non_zero_while_a_delivery_fails_and_retry_failed_requeues(
    pg: psycopg.Connection, env: pytest.MonkeyPatch, http_receiver: Callable[..., HttpReceiver]
) -> None:
    raise_alert(pg, Alert("run_failure", "critical", "refresh_job", "run_failure:refresh_job", "run failed"))
    pg.commit()
    slack = http_receiver(then=500)
    env.setenv("METRIFY_ALERT_SLACK_WEBHOOK_URL", slack.url)
    failed = invoke("alerts", "send", code=1)
    assert "failed slack opened" in failed and "HTTP 500" in failed and "to retry 1 (slack 1)" in failed
    assert len(slack.received) == 3
    pg.execute("UPDATE ops.alert_deliveries SET status = 'failed', next_attempt_at = NULL")
    pg.commit()
    slack.then = 200
    assert "nothing to deliver" in invoke("alerts", "send")
    requeued = invoke("alerts", "send", "--retry-failed")
    assert "re-queued 1 failed deliveries" in requeued and "delivered 1 (slack 1)" in requeued
    blocks = slack.received[-1].json["blocks"]
    assert blocks[0]["text"]["text"] == "[CRITICAL] opened: refresh_job"


def test_test_channel_reaches_each_configured_channel(
    env: pytest.MonkeyPatch, http_receiver: Callable[..., HttpReceiver], smtp_receiver: SmtpReceiver
) -> None:
    assert "no alert channel configured" in invoke("alerts", "test-channel", code=1)
    webhook = http_receiver(secret=SECRET)
    channels_env(env, webhook, smtp_receiver)
    out = invoke("alerts", "test-channel")
    assert "webhook" in out and "email" in out and out.count("delivered") == 2
    (request,) = webhook.received
    assert request.signature_ok and request.json["event"] == "test"
    ((_envelope, message),) = smtp_receiver.messages
    assert message["Subject"].startswith("[Metrify INFO] TEST metrify alerts test-channel")

    broken = http_receiver(then=404)
    env.setenv("METRIFY_ALERT_SLACK_WEBHOOK_URL", broken.url)
    out = invoke("alerts", "test-channel", "--channel", "slack", code=1)
    assert "failed" in out and "HTTP 404" in out
    assert CliRunner().invoke(app, ["alerts", "test-channel", "--channel", "pager"]).exit_code == 2


@pytest.mark.parametrize("command", [[], ["list"], ["ack"], ["resolve"], ["send"], ["test-channel"]])
def test_every_alerts_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, ["alerts", *command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_a_misconfigured_channel_is_an_error_not_a_silent_drop(env: pytest.MonkeyPatch) -> None:
    env.setenv("METRIFY_ALERT_SLACK_WEBHOOK_URL", "ftp://chat.example.org/hook")
    result = CliRunner().invoke(app, ["alerts", "send"])
    assert result.exit_code == 2 and "must be an http(s) URL" in result.output
    env.delenv("METRIFY_ALERT_SLACK_WEBHOOK_URL")
    env.setenv("METRIFY_ALERT_WEBHOOK_URL", "https://ops.example.org/hook")  # without its secret
    result = CliRunner().invoke(app, ["alerts", "test-channel"])
    assert result.exit_code == 2 and "METRIFY_ALERT_WEBHOOK_SECRET" in result.output
