"""Alert delivery against real receivers (HTTP servers and an SMTP server on loopback ports) and a real
PostgreSQL: signatures, retries and backoff, standing conditions, resolutions, severities, the sensor."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from metrify_assets.alerts.channels import (
    Channel,
    DeliveryError,
    EmailChannel,
    Notification,
    SlackChannel,
    WebhookChannel,
    configured_channels,
    sign,
    trial_notification,
    verify_signature,
)
from metrify_assets.alerts.delivery import DeliveryPolicy, deliver_pending, retry_failed
from metrify_assets.alerts.sensor import NO_CHANNEL, alert_delivery_sensor
from metrify_assets.alerts.store import SEVERITIES, Alert, get, raise_alert, resolve, resolve_condition
from metrify_assets.env import ALERT_SEVERITIES, resolve_settings
from metrify_assets.resources import AlertChannelsResource, PostgresResource
from metrify_assets.resources.build import build_resources
from tests.alerts.conftest import SECRET
from tests.alerts.receivers import HttpReceiver, SmtpReceiver, events, free_port

pytestmark = [
    pytest.mark.postgres,
    # The SMTP receiver takes a password without TLS on purpose (the STARTTLS test covers TLS).
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
FAST = DeliveryPolicy(retry_wait_s=0.01, timeout_s=5, backoff_base_s=10)

Receivers = Callable[..., HttpReceiver]


def node_alert(node: int = 1, severity: str = "critical") -> Alert:
    return Alert(
        "grid_state",
        severity,
        f"grid node N{node}",
        f"grid_state:N{node}",
        f"N{node} in emergency: 49.2 Hz",
        {"frequency_hz": 49.2},
    )


@pytest.fixture
def conn(pg: psycopg.Connection, pg_resource: PostgresResource) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the (truncated) database, as the sensor uses."""
    with pg_resource.connect(autocommit=True) as c:
        yield c


def deliveries(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT alert_id, channel, event, status, attempts, last_error, delivered_at IS NOT NULL "
        "FROM ops.alert_deliveries ORDER BY alert_id, channel, event"
    ).fetchall()


# --- signatures -------------------------------------------------------------------------------


def test_a_signature_verifies_only_for_its_secret_body_and_a_recent_timestamp() -> None:
    body = b'{"event":"opened"}'
    now = 1_767_614_400
    signature = sign(SECRET, str(now), body)
    assert signature.startswith("sha256=") and len(signature) == len("sha256=") + 64
    assert verify_signature(SECRET, str(now), body, signature, now=now + 10)
    assert not verify_signature("another secret", str(now), body, signature, now=now)
    assert not verify_signature(SECRET, str(now), body + b" ", signature, now=now)  # tampered body
    assert not verify_signature(SECRET, str(now + 1), body, signature, now=now)  # tampered timestamp
    assert not verify_signature(SECRET, str(now), body, signature, now=now + 301)  # replayed later
    assert not verify_signature(SECRET, "yesterday", body, signature, now=now)


def test_the_webhook_posts_signed_json_that_the_receiver_verifies(
    conn: psycopg.Connection, http_receiver: Receivers
) -> None:
    receiver = http_receiver(secret=SECRET)
    raised = raise_alert(conn, node_alert(), at=T0)
    report = deliver_pending(conn, [WebhookChannel(receiver.url, SECRET)], FAST, now=T0)
    assert report.summary == "delivered 1 (webhook 1)"
    (request,) = receiver.received
    assert request.signature_ok and request.status == 200 and request.path == "/hooks/metrify"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Metrify-Event"] == "opened"
    assert request.headers["X-Metrify-Team"] == "grid-operations"  # a receiver routes on it
    payload = request.json
    assert (
        payload["delivery_id"]
        == request.headers["X-Metrify-Delivery"]
        == f"metrify-alert-{raised.alert_id}-opened"
    )
    assert payload["event"] == "opened"
    alert = payload["alert"]
    assert (alert["id"], alert["kind"], alert["severity"], alert["status"], alert["team"]) == (
        raised.alert_id,
        "grid_state",
        "critical",
        "open",
        "grid-operations",
    )
    assert (alert["subject"], alert["dedup_key"], alert["details"]) == (
        "grid node N1",
        "grid_state:N1",
        {"frequency_hz": 49.2},
    )
    assert datetime.fromisoformat(alert["opened_at"]) == T0
    assert deliveries(conn) == [(raised.alert_id, "webhook", "opened", "delivered", 1, None, True)]

    # A receiver with another secret refuses the request (401): a failed attempt, recorded.
    wrong = http_receiver(secret="not the secret", then=200)
    second = raise_alert(conn, node_alert(2), at=T0)
    report = deliver_pending(conn, [WebhookChannel(wrong.url, SECRET)], FAST, now=T0)
    assert [r.signature_ok for r in wrong.received] == [False, False, False]
    assert report.of_status("pending")[0].error == "HTTP 401 Unauthorized: receiver says no"
    assert get(conn, second.alert_id).status == "open"


def test_a_receiver_that_fails_twice_then_succeeds_is_delivered_on_the_third_attempt(
    conn: psycopg.Connection, http_receiver: Receivers
) -> None:
    receiver = http_receiver(script=[500, 500], then=200, secret=SECRET)
    raised = raise_alert(conn, node_alert(), at=T0)
    waits: list[float] = []
    report = deliver_pending(conn, [WebhookChannel(receiver.url, SECRET)], FAST, now=T0, sleep=waits.append)
    assert [r.status for r in receiver.received] == [500, 500, 200]
    assert len(set(events(receiver.received))) == 1  # the same delivery id each time: receivers dedup by it
    assert waits == [0.01, 0.02]  # exponential waits between the tries of one tick
    (outcome,) = report.outcomes
    assert (outcome.status, outcome.attempts, outcome.attempts_now) == ("delivered", 3, 3)
    # The attempts are 3 and the status delivered; the error of the attempt before is kept.
    assert deliveries(conn) == [
        (
            raised.alert_id,
            "webhook",
            "opened",
            "delivered",
            3,
            "HTTP 500 Internal Server Error: receiver says no",
            True,
        )
    ]
    assert deliver_pending(conn, [WebhookChannel(receiver.url, SECRET)], FAST, now=T0).outcomes == []
    assert len(receiver.received) == 3


def test_a_receiver_that_never_succeeds_is_retried_with_backoff_then_given_up(
    conn: psycopg.Connection, http_receiver: Receivers
) -> None:
    receiver = http_receiver(then=503)
    channel = SlackChannel(receiver.url)
    policy = DeliveryPolicy(
        retry_wait_s=0.01, timeout_s=5, backoff_base_s=10, backoff_cap_s=60, max_attempts=5
    )
    raised = raise_alert(conn, node_alert(), at=T0)

    first = deliver_pending(conn, [channel], policy, now=T0)
    (outcome,) = first.outcomes
    assert (outcome.status, outcome.attempts) == ("pending", 3)
    assert outcome.next_attempt_at == T0 + timedelta(seconds=60)  # 10 s x 2^3 = 80 s, capped at 60 s
    assert "retry after 2026-01-05 12:01:00" in outcome.text
    assert first.summary == "to retry 1 (slack 1)"

    assert deliver_pending(conn, [channel], policy, now=T0 + timedelta(seconds=30)).outcomes == []  # not due
    assert len(receiver.received) == 3

    last = deliver_pending(conn, [channel], policy, now=T0 + timedelta(seconds=60))
    (outcome,) = last.outcomes
    assert (outcome.status, outcome.attempts, outcome.attempts_now) == ("failed", 5, 2)  # max_attempts 5
    assert last.summary == "gave up 1 (slack 1)"
    assert deliveries(conn) == [
        (
            raised.alert_id,
            "slack",
            "opened",
            "failed",
            5,
            "HTTP 503 Service Unavailable: receiver says no",
            False,
        )
    ]
    assert deliver_pending(conn, [channel], policy, now=T0 + timedelta(days=1)).outcomes == []  # final

    # After the receiver is fixed, `send --retry-failed` queues it again from zero attempts.
    receiver.then = 200
    assert retry_failed(conn, ["slack"]) == 1
    again = deliver_pending(conn, [channel], policy, now=T0 + timedelta(days=1))
    assert [(o.status, o.attempts) for o in again.outcomes] == [("delivered", 1)]


def test_an_unreachable_receiver_records_the_connection_error(conn: psycopg.Connection) -> None:
    raise_alert(conn, node_alert(), at=T0)
    closed = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    report = deliver_pending(conn, [WebhookChannel(closed, SECRET)], FAST, now=T0)
    (outcome,) = report.outcomes
    assert outcome.status == "pending" and outcome.attempts == 3
    assert outcome.error is not None and outcome.error.startswith("unreachable:")
    assert "Connection refused" in outcome.error


def test_a_dead_channel_is_left_alone_for_the_rest_of_the_tick(
    conn: psycopg.Connection, http_receiver: Receivers
) -> None:
    dead = http_receiver(then=500)
    alive = http_receiver(secret=SECRET)
    for node in (1, 2, 3):
        raise_alert(conn, node_alert(node), at=T0)
    report = deliver_pending(conn, [SlackChannel(dead.url), WebhookChannel(alive.url, SECRET)], FAST, now=T0)
    assert len(dead.received) == 3  # one alert's three tries, not nine
    assert len(alive.received) == 3  # the other channel is not held up
    assert report.down == ["slack"]
    slack = [row for row in deliveries(conn) if row[1] == "slack"]
    assert [(status, attempts) for _, _, _, status, attempts, _, _ in slack] == [
        ("pending", 3),
        ("pending", 0),
        ("pending", 0),
    ]
    # Untried rows were given back as they were: due at once on the next tick.
    assert conn.execute(
        "SELECT count(*) FROM ops.alert_deliveries WHERE channel = 'slack' AND attempts = 0 "
        "AND next_attempt_at IS NULL"
    ).fetchone() == (2,)


def test_a_standing_alert_is_sent_once_and_its_resolution_once(
    conn: psycopg.Connection, http_receiver: Receivers
) -> None:
    slack = http_receiver()
    channels = [SlackChannel(slack.url)]
    raised = raise_alert(conn, node_alert(), at=T0)
    assert deliver_pending(conn, channels, FAST).summary == "delivered 1 (slack 1)"
    # The condition stands: every refresh updates the alert, and nobody is told again.
    for hour in (1, 2, 3):
        again = raise_alert(conn, node_alert(), at=T0 + timedelta(hours=hour))
        assert again.alert_id == raised.alert_id and not again.new
        assert deliver_pending(conn, channels, FAST).outcomes == []
    assert get(conn, raised.alert_id).occurrences == 4
    assert len(slack.received) == 1

    opened = slack.received[0].json
    assert set(opened) == {"text", "blocks"}
    assert opened["text"] == "[CRITICAL] grid node N1: N1 in emergency: 49.2 Hz"
    header = opened["blocks"][0]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "[CRITICAL] opened: grid node N1", "emoji": False},
    }
    assert opened["blocks"][1]["text"]["text"] == "N1 in emergency: 49.2 Hz"
    fields = [f["text"] for f in opened["blocks"][2]["fields"]]
    assert fields == [
        "Severity: critical",
        "Kind: grid_state",
        "Team: grid-operations",
        f"Alert: #{raised.alert_id} (open)",
        "Occurrences: 1",
    ]
    assert "http" not in slack.received[0].body.decode()  # link-free
    assert all(
        t["type"] == "plain_text" for b in opened["blocks"] for t in b.get("fields", [b.get("text")]) if t
    )

    # The condition clears: the resolution is delivered, once, as event `resolved`.
    assert resolve_condition(conn, "grid_state:N1", "frequency back in band", at=T0 + timedelta(hours=4))
    assert deliver_pending(conn, channels, FAST).summary == "delivered 1 (slack 1)"
    assert deliver_pending(conn, channels, FAST).outcomes == []
    resolved = slack.received[1].json
    assert resolved["text"] == "[CRITICAL] RESOLVED grid node N1: N1 in emergency: 49.2 Hz"
    assert resolved["blocks"][0]["text"]["text"] == "[CRITICAL] resolved: grid node N1"
    assert "frequency back in band" in resolved["blocks"][3]["elements"][0]["text"]
    assert [row[2:5] for row in deliveries(conn)] == [
        ("opened", "delivered", 1),
        ("resolved", "delivered", 1),
    ]

    # The same condition later is a new alert, sent again.
    reopened = raise_alert(conn, node_alert(), at=T0 + timedelta(hours=5))
    assert reopened.new
    report = deliver_pending(conn, channels, FAST)
    assert [(o.alert_id, o.event) for o in report.outcomes] == [(reopened.alert_id, "opened")]


def test_the_opening_and_resolution_of_an_alert_resolved_before_the_receiver_came_back_are_both_sent(
    conn: psycopg.Connection, http_receiver: Receivers
) -> None:
    receiver = http_receiver(script=[500, 500, 500], then=200, secret=SECRET)
    channel = WebhookChannel(receiver.url, SECRET)
    raised = raise_alert(conn, node_alert(), at=T0)
    assert deliver_pending(conn, [channel], FAST, now=T0).summary == "to retry 1 (webhook 1)"
    resolve(conn, raised.alert_id, by="ana", note="fixed on site")
    later = deliver_pending(conn, [channel], FAST, now=T0 + timedelta(hours=1))
    assert [(o.event, o.status) for o in later.outcomes] == [
        ("opened", "delivered"),
        ("resolved", "delivered"),
    ]
    assert [e for _, e in events(receiver.received)] == ["opened"] * 4 + ["resolved"]
    resolution = receiver.received[-1].json
    assert resolution["alert"]["status"] == "resolved"
    assert (resolution["alert"]["resolved_by"], resolution["alert"]["resolution"]) == ("ana", "fixed on site")


def test_an_alert_that_cleared_before_any_tick_is_still_announced_then_resolved(
    conn: psycopg.Connection, http_receiver: Receivers
) -> None:
    """A grid alert state that began and ended within the hour a run covered is news all the same."""
    receiver = http_receiver()
    raise_alert(conn, node_alert(), at=T0)
    resolve_condition(conn, "grid_state:N1", "back to normal", at=T0 + timedelta(minutes=8))
    tick = T0 + timedelta(minutes=20)
    done = deliver_pending(conn, [SlackChannel(receiver.url)], FAST, now=tick)
    assert [(o.event, o.status) for o in done.outcomes] == [
        ("opened", "delivered"),
        ("resolved", "delivered"),
    ]
    assert len(receiver.received) == 2
    assert deliver_pending(conn, [SlackChannel(receiver.url)], FAST, now=tick).outcomes == []  # once


def test_a_channel_added_later_is_told_of_the_standing_alerts_not_of_old_cleared_ones(
    conn: psycopg.Connection, http_receiver: Receivers
) -> None:
    """Months without a channel (or a backfill of last year's grid data) left hundreds of cleared
    alerts unannounced: the first channel configured was sent every one of them."""
    receiver = http_receiver()
    for node in range(1, 201):  # last month's states, long cleared
        raise_alert(conn, node_alert(node), at=T0 - timedelta(days=30))
        resolve_condition(
            conn, f"grid_state:N{node}", "back to normal", at=T0 - timedelta(days=30, minutes=-9)
        )
    raise_alert(conn, node_alert(500), at=T0 - timedelta(days=3))  # still standing
    raise_alert(conn, node_alert(501), at=T0 - timedelta(hours=2))  # cleared within the day: news
    resolve_condition(conn, "grid_state:N501", "back to normal", at=T0 - timedelta(hours=1))
    done = deliver_pending(conn, [SlackChannel(receiver.url)], FAST, now=T0)
    told = sorted((o.subject, o.event) for o in done.outcomes)
    assert told == [
        ("grid node N500", "opened"),
        ("grid node N501", "opened"),
        ("grid node N501", "resolved"),
    ]
    assert conn.execute("SELECT count(*) FROM ops.alerts WHERE announced IS FALSE").fetchone() == (0,)
    assert deliver_pending(conn, [SlackChannel(receiver.url)], FAST, now=T0).outcomes == []


def test_only_alerts_at_or_above_the_minimum_severity_are_sent(
    conn: psycopg.Connection, http_receiver: Receivers
) -> None:
    receiver = http_receiver()
    channels = [SlackChannel(receiver.url)]
    ids = {sev: raise_alert(conn, node_alert(n, sev), at=T0).alert_id for n, sev in enumerate(SEVERITIES)}
    report = deliver_pending(conn, channels, FAST)  # default: warning and above
    assert {o.alert_id for o in report.outcomes} == {ids["warning"], ids["critical"]}
    assert report.outcomes[0].alert_id == ids["critical"]  # most severe first

    critical_only = DeliveryPolicy(min_severity="critical", retry_wait_s=0.01)
    warning = raise_alert(conn, node_alert(7, "warning"), at=T0)
    assert deliver_pending(conn, channels, critical_only).outcomes == []
    # The standing condition gets worse: now it is critical, and sent.
    raise_alert(conn, node_alert(7, "critical"), at=T0 + timedelta(minutes=5))
    assert [o.alert_id for o in deliver_pending(conn, channels, critical_only).outcomes] == [warning.alert_id]

    everything = DeliveryPolicy(min_severity="info", retry_wait_s=0.01)
    assert [o.alert_id for o in deliver_pending(conn, channels, everything).outcomes] == [ids["info"]]
    with pytest.raises(ValueError, match="min_severity"):
        DeliveryPolicy(min_severity="urgent")


def test_e_mail_goes_through_a_real_smtp_server(
    conn: psycopg.Connection, smtp_receiver: SmtpReceiver
) -> None:
    channel = EmailChannel(
        host="127.0.0.1",
        port=smtp_receiver.port,
        sender="metrify@example.org",
        recipients=("ops@example.org", "grid@example.org"),
        user="metrify",
        password="mail-password",
    )
    raised = raise_alert(conn, node_alert(), at=T0)
    assert deliver_pending(conn, [channel], FAST).summary == "delivered 1 (email 1)"
    resolve_condition(conn, "grid_state:N1", "frequency back in band")
    assert deliver_pending(conn, [channel], FAST).summary == "delivered 1 (email 1)"

    (env1, opened), (_, resolved) = smtp_receiver.messages
    assert env1.mail_from == "metrify@example.org"
    assert env1.rcpt_tos == ["ops@example.org", "grid@example.org"]
    assert opened["Subject"] == "[Metrify CRITICAL] grid node N1: N1 in emergency: 49.2 Hz"
    assert opened["Message-ID"] == f"<metrify-alert-{raised.alert_id}-opened@metrify>"
    assert opened.get_content_type() == "text/plain"
    body = opened.get_content()
    assert f"CRITICAL grid_state alert #{raised.alert_id}: opened" in body
    assert "Condition:    grid_state:N1" in body and "frequency_hz: 49.2" in body
    assert f"metrify alerts ack {raised.alert_id}" in body
    assert resolved["Subject"] == "[Metrify CRITICAL] RESOLVED grid node N1: N1 in emergency: 49.2 Hz"
    assert resolved["In-Reply-To"] == opened["Message-ID"]  # threads under the opening
    assert "Note:         frequency back in band" in resolved.get_content()

    assert opened["X-Metrify-Team"] == "grid-operations" and "Team:         grid-operations" in body

    wrong = EmailChannel(
        "127.0.0.1", smtp_receiver.port, "metrify@example.org", ("ops@example.org",), "metrify", "nope"
    )
    with pytest.raises(DeliveryError, match="SMTP 535"):
        wrong.send(Notification.of(get(conn, raised.alert_id), "opened"), timeout_s=5)


def test_e_mail_reaches_the_team_that_answers_the_alert(
    conn: psycopg.Connection, smtp_receiver: SmtpReceiver
) -> None:
    """METRIFY_ALERT_SMTP_TO_GRID_OPERATIONS takes the grid's alerts; the others go to SMTP_TO."""
    env = {
        "METRIFY_HOME": "/tmp/metrify-alerts-env",
        "METRIFY_ALERT_SMTP_HOST": "127.0.0.1",
        "METRIFY_ALERT_SMTP_PORT": str(smtp_receiver.port),
        "METRIFY_ALERT_SMTP_USER": "metrify",
        "METRIFY_ALERT_SMTP_TO": "ops@example.org",
        "METRIFY_ALERT_SMTP_TO_GRID_OPERATIONS": "control-room@example.org, grid@example.org",
    }
    resource = build_resources(resolve_settings(env))["alert_channels"]
    assert resource.smtp_to_by_team == {"grid-operations": ["control-room@example.org", "grid@example.org"]}
    resource = resource.model_copy(update={"smtp_password": "mail-password"})  # the EnvVar, resolved
    channels = configured_channels(resource)
    raise_alert(conn, node_alert(), at=T0)
    quality = Alert(
        kind="quality", dedup_key="quality:meter_readings", severity="warning", subject="meter_readings",
        summary="batch b1 scored 80.0 < 95",
    )  # fmt: skip
    raise_alert(conn, quality, at=T0)
    assert deliver_pending(conn, channels, FAST, now=T0).summary == "delivered 2 (email 2)"
    sent = {message["X-Metrify-Team"]: envelope.rcpt_tos for envelope, message in smtp_receiver.messages}
    assert sent == {
        "grid-operations": ["control-room@example.org", "grid@example.org"],
        "data-quality": ["ops@example.org"],
    }
    # `metrify alerts test-channel` reaches every list, so a wrong team address shows before its first alert.
    (email,) = channels
    email.send(trial_notification(), timeout_s=5)
    envelope, _ = smtp_receiver.messages[-1]
    assert envelope.rcpt_tos == ["ops@example.org", "control-room@example.org", "grid@example.org"]


def test_a_team_recipient_variable_that_names_no_team_is_an_error() -> None:
    """METRIFY_ALERT_SMTP_TO_GRID_OPS would have sent the grid's alerts to METRIFY_ALERT_SMTP_TO unsaid."""
    mail = {"METRIFY_ALERT_SMTP_HOST": "smtp.example.org", "METRIFY_ALERT_SMTP_TO": "ops@example.org"}
    with pytest.raises(
        ValueError,
        match=r"METRIFY_ALERT_SMTP_TO_GRID_OPS: no such team.*METRIFY_ALERT_SMTP_TO_GRID_OPERATIONS",
    ):
        resolve_settings({**mail, "METRIFY_ALERT_SMTP_TO_GRID_OPS": "grid@example.org"})
    with pytest.raises(
        ValueError, match="METRIFY_ALERT_SMTP_TO_DATA_QUALITY is set without METRIFY_ALERT_SMTP_HOST"
    ):
        resolve_settings({"METRIFY_ALERT_SMTP_TO_DATA_QUALITY": "dq@example.org"})
    empty = resolve_settings({**mail, "METRIFY_ALERT_SMTP_TO_DATA_QUALITY": " "}).alerts
    assert empty.smtp_to_by_team == ()  # set but empty: the team's alerts go to METRIFY_ALERT_SMTP_TO


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (the test's own CA: the client trusts it by SSL_CERT_FILE)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_e_mail_with_starttls_logs_in_over_tls_only(
    conn: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ssl

    from aiosmtpd.controller import Controller

    from tests.alerts.receivers import _Mailbox

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox, port = _Mailbox(), free_port()
    logins: list[str] = []

    def authenticate(
        server: object, session: object, envelope: object, mechanism: str, data: object
    ) -> object:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        assert isinstance(data, LoginPassword)
        logins.append(data.login.decode())
        return AuthResult(success=data.password == b"mail-password", handled=False)

    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,  # refuses AUTH and mail before STARTTLS
        authenticator=authenticate,
        auth_required=True,
    )
    controller.start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client verifies the server against it
        raise_alert(conn, node_alert(), at=T0)
        plain = EmailChannel(
            "127.0.0.1", port, "metrify@example.org", ("ops@example.org",), "metrify", "mail-password"
        )
        refused = deliver_pending(
            conn, [plain], DeliveryPolicy(retry_wait_s=0.01, attempts_per_tick=1), now=T0
        )
        assert (
            refused.outcomes[0].error == "SMTPNotSupportedError: SMTP AUTH extension not supported by server."
        )
        tls = EmailChannel(
            "127.0.0.1",
            port,
            "metrify@example.org",
            ("ops@example.org",),
            "metrify",
            "mail-password",
            starttls=True,
        )
        report = deliver_pending(conn, [tls], FAST, now=T0 + timedelta(hours=1))
        assert report.summary == "delivered 1 (email 1)"
        assert logins == ["metrify"] and len(mailbox.messages) == 1
    finally:
        controller.stop()


def test_overlapping_ticks_deliver_each_alert_once(
    conn: psycopg.Connection, pg_resource: PostgresResource, http_receiver: Receivers
) -> None:
    receiver = http_receiver(secret=SECRET, delay_s=0.1)
    channel = WebhookChannel(receiver.url, SECRET)
    for node in range(8):
        raise_alert(conn, node_alert(node), at=T0)
    errors: list[BaseException] = []

    def tick() -> None:
        try:
            with pg_resource.connect(autocommit=True) as own:
                deliver_pending(own, [channel], FAST)
        except BaseException as err:  # noqa: BLE001 - reported by the test below
            errors.append(err)

    threads = [threading.Thread(target=tick) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    sent = [delivery for delivery, _ in events(receiver.received)]
    assert len(sent) == len(set(sent)) == 8  # every alert once, none twice
    assert {row[3:5] for row in deliveries(conn)} == {("delivered", 1)}


def test_a_dead_ticks_claim_is_taken_over_after_its_lease(
    conn: psycopg.Connection, http_receiver: Receivers
) -> None:
    receiver = http_receiver()
    raise_alert(conn, node_alert(), at=T0)
    # A tick claims the row and dies before its attempt (the claim commits on its own).
    from metrify_assets.alerts.delivery import _claim, enqueue

    enqueue(conn, ["slack"], "warning", T0)
    assert len(_claim(conn, "slack", T0, lease_s=300, limit=10)) == 1
    channels = [SlackChannel(receiver.url)]
    assert deliver_pending(conn, channels, FAST, now=T0 + timedelta(seconds=60)).outcomes == []  # leased
    report = deliver_pending(conn, channels, FAST, now=T0 + timedelta(seconds=301))
    assert report.summary == "delivered 1 (slack 1)"


def test_a_tick_stops_starting_deliveries_when_its_time_budget_is_spent(
    conn: psycopg.Connection, http_receiver: Receivers
) -> None:
    receiver = http_receiver(delay_s=0.3)  # a slow receiver: each delivery takes 0.3 s
    for node in range(8):
        raise_alert(conn, node_alert(node), at=T0)
    policy = DeliveryPolicy(timeout_s=1.0, tick_budget_s=2.0)  # starts deliveries in its first second
    report = deliver_pending(conn, [SlackChannel(receiver.url)], policy)
    sent = len(report.of_status("delivered"))
    assert 1 <= sent < 8 and report.out_of_time
    assert report.summary == f"delivered {sent} (slack {sent}); the rest next tick (time budget spent)"
    # The rest were given back untried, due at once for the next tick.
    assert conn.execute(
        "SELECT count(*) FROM ops.alert_deliveries WHERE status = 'pending' AND attempts = 0 "
        "AND next_attempt_at IS NULL"
    ).fetchone() == (8 - sent,)
    rest = deliver_pending(conn, [SlackChannel(receiver.url)], DeliveryPolicy(timeout_s=1.0))
    assert len(rest.of_status("delivered")) == 8 - sent


def test_a_tick_starts_no_delivery_with_less_budget_left_than_the_socket_timeout(
    conn: psycopg.Connection, http_receiver: Receivers
) -> None:
    receiver = http_receiver()
    raise_alert(conn, node_alert(), at=T0)
    # The timeout bounds each socket operation, so a try may take longer than it: a tick whose budget
    # is below one timeout starts nothing, and the row stays due for the next tick.
    report = deliver_pending(
        conn, [SlackChannel(receiver.url)], DeliveryPolicy(timeout_s=10, tick_budget_s=9.9)
    )
    assert report.out_of_time and report.outcomes == [] and receiver.received == []
    assert [row[3:5] for row in deliveries(conn)] == [("pending", 0)]
    report = deliver_pending(
        conn, [SlackChannel(receiver.url)], DeliveryPolicy(timeout_s=10, tick_budget_s=30)
    )
    assert report.summary == "delivered 1 (slack 1)"


def test_deliver_pending_needs_an_autocommit_connection(pg: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="autocommit"):
        deliver_pending(pg, [], FAST)


# --- configuration and the sensor --------------------------------------------------------------


def test_channels_come_from_the_environment_with_secrets_as_env_vars() -> None:
    assert ALERT_SEVERITIES == SEVERITIES
    env = {
        "METRIFY_HOME": "/tmp/metrify-alerts-env",
        "METRIFY_ALERT_WEBHOOK_URL": "https://ops.example.org/hooks/metrify",
        "METRIFY_ALERT_WEBHOOK_SECRET": SECRET,
        "METRIFY_ALERT_SLACK_WEBHOOK_URL": "https://hooks.example.org/services/T0/B0/x",
        "METRIFY_ALERT_SMTP_HOST": "smtp.example.org",
        "METRIFY_ALERT_SMTP_PORT": "587",
        "METRIFY_ALERT_SMTP_USER": "metrify",
        "METRIFY_ALERT_SMTP_PASSWORD": "mail-password",
        "METRIFY_ALERT_SMTP_FROM": "metrify@example.org",
        "METRIFY_ALERT_SMTP_TO": "ops@example.org, grid@example.org",
        "METRIFY_ALERT_SMTP_STARTTLS": "true",
        "METRIFY_ALERT_MIN_SEVERITY": "critical",
    }
    settings = resolve_settings(env).alerts
    assert settings.smtp_to == ("ops@example.org", "grid@example.org")
    assert (settings.smtp_port, settings.smtp_starttls, settings.min_severity) == (587, True, "critical")
    assert settings.webhook_secret_set and settings.smtp_password_set
    resource = build_resources(resolve_settings(env))["alert_channels"]
    assert isinstance(resource, AlertChannelsResource)
    # Secrets stay references in the code location (shown as such in the UI, read at run time).
    assert isinstance(resource.webhook_secret, dg.EnvVar)
    assert isinstance(resource.smtp_password, dg.EnvVar)
    assert isinstance(resource.slack_webhook_url, dg.EnvVar)

    assert resolve_settings({"METRIFY_HOME": "/tmp/x"}).alerts.webhook_url is None
    with pytest.raises(ValueError, match="METRIFY_ALERT_WEBHOOK_SECRET"):
        resolve_settings({"METRIFY_ALERT_WEBHOOK_URL": "https://ops.example.org/hook"})
    with pytest.raises(ValueError, match="METRIFY_ALERT_SMTP_TO"):
        resolve_settings({"METRIFY_ALERT_SMTP_HOST": "smtp.example.org"})
    with pytest.raises(ValueError, match="METRIFY_ALERT_MIN_SEVERITY"):
        resolve_settings({"METRIFY_ALERT_MIN_SEVERITY": "urgent"})
    with pytest.raises(ValueError, match="METRIFY_ALERT_SMTP_STARTTLS"):
        resolve_settings({"METRIFY_ALERT_SMTP_STARTTLS": "maybe"})
    with pytest.raises(ValueError, match="http"):
        configured_channels(AlertChannelsResource(slack_webhook_url="file:///etc/passwd"))
    assert configured_channels(AlertChannelsResource()) == []


def test_the_sensor_delivers_and_reports_what_it_did(
    conn: psycopg.Connection, pg_resource: PostgresResource, http_receiver: Receivers
) -> None:
    receiver = http_receiver(secret=SECRET)
    raised = raise_alert(conn, node_alert(), at=T0)
    channels = AlertChannelsResource(webhook_url=receiver.url, webhook_secret=SECRET, retry_wait_s=0.01)
    context = dg.build_sensor_context(
        resources={"postgres": pg_resource, "alert_channels": channels},
        cursor=json.dumps({"delivered": 4, "retried": 1, "gave_up": 0}),
    )
    result = alert_delivery_sensor(context)
    assert isinstance(result, dg.SensorResult)
    assert result.skip_reason is not None
    assert result.skip_reason.skip_message == "delivered 1 (webhook 1)"
    assert result.cursor is not None
    assert json.loads(result.cursor) == {
        "delivered": 5,
        "retried": 1,
        "gave_up": 0,
        "last": "delivered 1 (webhook 1)",
    }
    assert events(receiver.received) == [(f"metrify-alert-{raised.alert_id}-opened", "opened")]

    quiet = alert_delivery_sensor(
        dg.build_sensor_context(
            resources={"postgres": pg_resource, "alert_channels": channels}, cursor=result.cursor
        )
    )
    assert isinstance(quiet, dg.SensorResult) and quiet.skip_reason is not None
    assert quiet.skip_reason.skip_message == "nothing to deliver (webhook)"

    unconfigured = alert_delivery_sensor(
        dg.build_sensor_context(
            resources={"postgres": pg_resource, "alert_channels": AlertChannelsResource()}
        )
    )
    assert isinstance(unconfigured, dg.SkipReason) and unconfigured.skip_message == NO_CHANNEL
    assert get(conn, raised.alert_id).status == "open"  # recorded either way


def test_the_code_location_runs_the_sensor_with_the_channels_resource(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    from metrify_assets.definitions import defs as load_defs

    sensor = load_defs().resolve_sensor_def("alert_delivery_sensor")
    assert sensor.minimum_interval_seconds == 30
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.required_resource_keys >= {"postgres", "alert_channels"}


def test_backoff_doubles_per_attempt_up_to_the_cap() -> None:
    policy = DeliveryPolicy(backoff_base_s=15, backoff_cap_s=3600)
    assert [policy.backoff(n) for n in (3, 6, 9)] == [
        dt.timedelta(seconds=120),
        dt.timedelta(seconds=960),
        dt.timedelta(seconds=3600),
    ]


# --- escalations ------------------------------------------------------------------------------


def grid_alert(severity: str, node: str = "N1") -> Alert:
    """A grid_state alert as `grid.store` raises it (subject: the node id)."""
    state, rule = {
        "info": ("alert", "beyond_standard_range"),
        "warning": ("alert", "beyond_standard_range"),
        "critical": ("emergency", "steady_state_beyond_max"),
    }[severity]
    started = "2026-01-05T11:58:00+00:00"
    return Alert(
        "grid_state",
        severity,
        node,
        f"grid_state:{node}",
        f"Grid node {node} in {state} state since {started} ({rule}, peak deviation -210 mHz)",
        {"state": state, "rule": rule, "started_at": started, "peak_deviation_hz": -0.21,
         "area": "continental_europe", "last_sample_at": "2026-01-05T12:00:00+00:00"},
    )  # fmt: skip


def test_an_alert_escalated_after_its_opening_was_delivered_is_told_again_as_escalated(
    conn: psycopg.Connection, http_receiver: Receivers, smtp_receiver: SmtpReceiver
) -> None:
    webhook = http_receiver(secret=SECRET)
    slack = http_receiver()
    email = EmailChannel(
        "127.0.0.1",
        smtp_receiver.port,
        "metrify@example.org",
        ("ops@example.org",),
        "metrify",
        "mail-password",
    )
    channels: list[Channel] = [WebhookChannel(webhook.url, SECRET), SlackChannel(slack.url), email]
    opened = raise_alert(conn, grid_alert("warning"), at=T0)
    assert (opened.new, opened.escalated, opened.severity) == (True, False, "warning")
    assert (
        deliver_pending(conn, channels, FAST, now=T0).summary == "delivered 3 (webhook 1, slack 1, email 1)"
    )

    worse = raise_alert(conn, grid_alert("critical"), at=T0 + timedelta(minutes=5))
    assert (worse.alert_id, worse.new, worse.escalated, worse.severity) == (
        opened.alert_id,
        False,
        True,
        "critical",
    )
    report = deliver_pending(conn, channels, FAST, now=T0 + timedelta(minutes=5))
    assert [(o.channel, o.event, o.severity, o.status) for o in report.outcomes] == [
        ("webhook", "escalated", "critical", "delivered"),
        ("slack", "escalated", "critical", "delivered"),
        ("email", "escalated", "critical", "delivered"),
    ]
    escalated = webhook.received[-1]
    assert escalated.signature_ok and escalated.headers["X-Metrify-Event"] == "escalated"
    payload = escalated.json
    assert payload["delivery_id"] == f"metrify-alert-{opened.alert_id}-escalated-critical"
    assert (payload["event"], payload["escalated_to"]) == ("escalated", "critical")
    assert (payload["alert"]["severity"], payload["alert"]["subject"]) == ("critical", "N1")
    text = slack.received[-1].json
    assert text["text"].startswith("[CRITICAL] N1 escalated to critical: Grid node N1 in emergency state")
    assert text["blocks"][0]["text"]["text"] == "[CRITICAL] escalated to critical: N1"
    (_, opening), (_, mail) = smtp_receiver.messages
    assert mail["Subject"].startswith("[Metrify CRITICAL] N1 escalated to critical: Grid node N1")
    assert mail["In-Reply-To"] == opening["Message-ID"]  # threads under the opening
    assert f"CRITICAL grid_state alert #{opened.alert_id}: escalated to critical" in mail.get_content()

    # Still critical: a refresh, not news.
    again = raise_alert(conn, grid_alert("critical"), at=T0 + timedelta(minutes=10))
    assert not again.escalated
    assert deliver_pending(conn, channels, FAST, now=T0 + timedelta(minutes=10)).outcomes == []
    # The resolution follows, once per channel.
    resolve_condition(conn, "grid_state:N1", "back to normal", at=T0 + timedelta(minutes=20))
    resolved = deliver_pending(conn, channels, FAST, now=T0 + timedelta(minutes=20))
    assert [(o.channel, o.event) for o in resolved.outcomes] == [
        ("webhook", "resolved"),
        ("slack", "resolved"),
        ("email", "resolved"),
    ]
    assert [e for _, e in events(webhook.received)] == ["opened", "escalated", "resolved"]


def test_escalations_go_to_channels_told_of_the_opening_once_per_severity_reached(
    conn: psycopg.Connection, http_receiver: Receivers
) -> None:
    told, late = http_receiver(secret=SECRET), http_receiver(script=[503] * 3, secret=SECRET)
    everything = DeliveryPolicy(min_severity="info", retry_wait_s=0.01, timeout_s=5, backoff_base_s=1)
    channels = [WebhookChannel(told.url, SECRET), WebhookChannel(late.url, SECRET, name="webhook2")]
    raised = raise_alert(conn, grid_alert("info"), at=T0)
    report = deliver_pending(conn, channels, everything, now=T0)
    assert [(o.channel, o.status) for o in report.outcomes] == [
        ("webhook", "delivered"),
        ("webhook2", "pending"),
    ]

    # Escalated while `webhook2` has not been told of the opening yet: its opening, sent later, says
    # the severity as it stands, so only `webhook` is told of the escalation.
    assert raise_alert(conn, grid_alert("warning"), at=T0 + timedelta(minutes=1)).escalated
    report = deliver_pending(conn, channels, everything, now=T0 + timedelta(minutes=1))
    assert [(o.channel, o.event, o.severity) for o in report.outcomes] == [
        ("webhook", "escalated", "warning"),
        ("webhook2", "opened", "warning"),
    ]
    assert deliver_pending(conn, channels, everything, now=T0 + timedelta(minutes=2)).outcomes == []

    assert raise_alert(conn, grid_alert("critical"), at=T0 + timedelta(minutes=3)).escalated
    report = deliver_pending(conn, channels, everything, now=T0 + timedelta(minutes=3))
    assert [(o.channel, o.event, o.severity) for o in report.outcomes] == [
        ("webhook", "escalated", "critical"),
        ("webhook2", "escalated", "critical"),
    ]
    assert events(told.received) == [
        (f"metrify-alert-{raised.alert_id}-opened", "opened"),
        (f"metrify-alert-{raised.alert_id}-escalated-warning", "escalated"),
        (f"metrify-alert-{raised.alert_id}-escalated-critical", "escalated"),
    ]
    assert [r.json["alert"]["severity"] for r in late.received if r.status == 200] == ["warning", "critical"]
    assert conn.execute(
        "SELECT channel, event, severity FROM ops.alert_deliveries ORDER BY channel, event, severity"
    ).fetchall() == [
        ("webhook", "escalated", "critical"),
        ("webhook", "escalated", "warning"),
        ("webhook", "opened", "info"),
        ("webhook2", "escalated", "critical"),
        ("webhook2", "opened", "warning"),  # what it was told when its opening was delivered
    ]


# --- work per tick ----------------------------------------------------------------------------


def rows_read(conn: psycopg.Connection) -> int:
    """Rows (sequential scans) and index entries read from the alert tables, as counted so far by this
    session (not yet reported: take the difference within one transaction)."""
    row = conn.execute(
        "SELECT sum(pg_stat_get_xact_tuples_returned(oid)) FROM ("
        "SELECT indexrelid AS oid FROM pg_index WHERE indrelid = ANY(%(tables)s::regclass[]) "
        "UNION ALL SELECT unnest(%(tables)s::regclass[])::oid) AS r",
        {"tables": ["ops.alerts", "ops.alert_deliveries"]},
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_tick_does_not_grow_with_the_history_of_resolved_alerts(
    pg: psycopg.Connection, conn: psycopg.Connection
) -> None:
    from metrify_assets.alerts.delivery import _claim, enqueue

    channels = ["webhook", "slack"]
    pg.execute(
        "INSERT INTO ops.alerts (kind, severity, subject, dedup_key, summary, opened_at, last_seen_at) "
        "SELECT 'grid_state', 'critical', 'N' || i, 'grid_state:N' || i, 'old', %(t)s, %(t)s "
        "FROM generate_series(1, 1000) AS i",
        {"t": T0},
    )
    assert enqueue(pg, channels, "warning", T0) == 2000
    pg.execute("UPDATE ops.alert_deliveries SET status = 'delivered'")  # told of every opening
    pg.execute("UPDATE ops.alerts SET resolved_at = %s", (T0 + timedelta(hours=1),))
    assert enqueue(pg, channels, "warning", T0) == 2000
    pg.execute("UPDATE ops.alert_deliveries SET status = 'delivered' WHERE status = 'pending'")
    for node in (1, 2, 3):  # a few standing alerts, told of
        raise_alert(pg, node_alert(node), at=T0 + timedelta(days=1))
    assert enqueue(pg, channels, "warning", T0) == 6
    pg.execute("UPDATE ops.alert_deliveries SET status = 'delivered' WHERE status = 'pending'")
    pg.commit()
    for table in ("ops.alerts", "ops.alert_deliveries"):  # what autovacuum does to old history
        conn.execute(f"VACUUM ANALYZE {table}")

    before = rows_read(pg)
    assert enqueue(pg, channels, "warning", T0) == 0  # nothing new: nothing queued ...
    assert _claim(pg, "webhook", T0 + timedelta(days=1), lease_s=300, limit=10) == []
    read = rows_read(pg) - before
    pg.rollback()
    # ... and what the tick read is about the 3 standing alerts (x 2 channels), not the 1,000 old
    # ones (joining every delivered opening with its alert read over 4,000 rows).
    assert read <= 100, read
