"""Notification channels: a signed JSON webhook, a Slack-compatible webhook and e-mail (docs/alerts.md).

Each channel sends one notification (an alert and its event: `opened`, `escalated`, `resolved`, or
`test`) in one try, or raises `DeliveryError` with what went wrong; retries and their bookkeeping are
`alerts.delivery`'s. HTTP goes through the standard library with a timeout and no
redirects (a 3xx is a failed attempt, not a POST silently turned into a GET); 2xx is delivered. The
timeout applies to each socket operation (connecting, each send and each receive), not to a whole
request or SMTP conversation, which can take longer.

Webhook requests are signed: `X-Metrify-Timestamp` (Unix seconds) and `X-Metrify-Signature:
sha256=<hex>`, the HMAC-SHA256 of `"{timestamp}.{body}"` keyed with the shared secret.
`verify_signature` is what a receiver runs (docs/alerts.md has it as a stand-alone snippet).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import smtplib
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING, Protocol

from metrify_assets.alerts.store import AlertRow
from metrify_assets.teams import alert_team

if TYPE_CHECKING:  # only a parameter's type: imported, it would bring Dagster into `metrify alerts list`
    from metrify_assets.resources.alerts import AlertChannelsResource

SIGNATURE_HEADER = "X-Metrify-Signature"
TIMESTAMP_HEADER = "X-Metrify-Timestamp"
DELIVERY_HEADER = "X-Metrify-Delivery"
EVENT_HEADER = "X-Metrify-Event"
TEAM_HEADER = "X-Metrify-Team"  # who answers it (metrify_assets/teams.py): a receiver routes on it
SIGNATURE_TOLERANCE_S = 300  # a receiver refuses older (or replayed) requests
USER_AGENT = "metrify-alerts/1"
_ERROR_BODY_CHARS = 200


class DeliveryError(Exception):
    """One attempt failed: the receiver answered non-2xx, or could not be reached."""


@dataclass(frozen=True)
class Notification:
    """What a channel is told: an alert as it stands now, and which of its events this is."""

    alert: AlertRow
    event: str  # opened / escalated / resolved / test
    delivery_id: str  # stable per (alert, event, severity reached): receivers drop repeats by it
    escalated_to: str | None = None  # `escalated`: the severity the standing alert rose to

    @classmethod
    def of(cls, alert: AlertRow, event: str, escalated_to: str | None = None) -> Notification:
        if (event == "escalated") != (escalated_to is not None):
            raise ValueError("an `escalated` notification, and only one, says the severity reached")
        return cls(alert, event, delivery_id(alert.alert_id, event, escalated_to), escalated_to)

    @property
    def severity(self) -> str:
        """The severity it announces: the one reached for an escalation, else the alert's."""
        return self.escalated_to or self.alert.severity

    @property
    def what(self) -> str:
        """The event as a person reads it: `opened`, `escalated to critical`, `resolved`, `test`."""
        return f"escalated to {self.escalated_to}" if self.escalated_to is not None else self.event


def delivery_id(alert_id: int, event: str, escalated_to: str | None = None) -> str:
    return f"metrify-alert-{alert_id}-{event}" + (f"-{escalated_to}" if escalated_to else "")


class Channel(Protocol):
    @property
    def name(self) -> str: ...

    def send(self, notification: Notification, timeout_s: float) -> None:
        """Deliver once, or raise `DeliveryError`."""


# --- signatures -------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of `"{timestamp}.{body}"` keyed with the secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """A receiver's check: the signature matches the raw body and the timestamp is recent (so a captured
    request cannot be replayed later). Compare in constant time; sign the bytes as received."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


# --- payloads ---------------------------------------------------------------------------------


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def alert_fields(alert: AlertRow) -> dict[str, object]:
    return {
        "id": alert.alert_id,
        "kind": alert.kind,
        "team": alert_team(alert.kind),
        "severity": alert.severity,
        "subject": alert.subject,
        "summary": alert.summary,
        "status": alert.status,
        "dedup_key": alert.dedup_key,
        "details": alert.details,
        "opened_at": _iso(alert.opened_at),
        "last_seen_at": _iso(alert.last_seen_at),
        "occurrences": alert.occurrences,
        "acked_at": _iso(alert.acked_at),
        "acked_by": alert.acked_by,
        "resolved_at": _iso(alert.resolved_at),
        "resolved_by": alert.resolved_by,
        "resolution": alert.resolution,
    }


def webhook_body(notification: Notification) -> bytes:
    payload: dict[str, object] = {
        "delivery_id": notification.delivery_id,
        "event": notification.event,
        "alert": alert_fields(notification.alert),
    }
    if notification.escalated_to is not None:
        payload["escalated_to"] = notification.escalated_to
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def _one_line(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def title(notification: Notification) -> str:
    """`[CRITICAL] N1: Grid node N1 in emergency state`, with the event when it is not an opening
    (`[CRITICAL] RESOLVED N1: ...`, `[CRITICAL] N1 escalated to critical: ...`)."""
    alert = notification.alert
    severity = f"[{notification.severity.upper()}]"
    if notification.escalated_to is not None:
        return _one_line(f"{severity} {alert.subject} {notification.what}: {alert.summary}", 240)
    event = {"opened": "", "resolved": "RESOLVED ", "test": "TEST "}.get(notification.event, "")
    return _one_line(f"{severity} {event}{alert.subject}: {alert.summary}", 240)


def _slack_escape(text: str) -> str:
    """Slack's `text` is mrkdwn: escape its control characters, so an alert cannot @-mention or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(notification: Notification) -> bytes:
    """Slack's incoming-webhook shape: a plain `text` fallback and blocks; plain text only, no links."""
    alert = notification.alert
    event = "test notification" if notification.event == "test" else notification.what

    def plain(text: str, limit: int = 2000) -> dict[str, object]:
        return {"type": "plain_text", "text": _one_line(text, limit), "emoji": False}

    facts = [
        f"Severity: {alert.severity}",
        f"Kind: {alert.kind}",
        f"Team: {alert_team(alert.kind)}",
        f"Alert: #{alert.alert_id} ({alert.status})",
        f"Occurrences: {alert.occurrences}",
    ]
    context = (
        f"opened {alert.opened_at:%Y-%m-%d %H:%M:%S %Z}, last seen {alert.last_seen_at:%Y-%m-%d %H:%M:%S %Z}"
    )
    if alert.resolved_at is not None:
        context += f"; resolved {alert.resolved_at:%Y-%m-%d %H:%M:%S %Z} by {alert.resolved_by}"
        if alert.resolution:
            context += f": {alert.resolution}"
    elif alert.acked_at is not None:
        context += f"; acknowledged by {alert.acked_by}"
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": plain(f"[{notification.severity.upper()}] {event}: {alert.subject}", 150)},
        {"type": "section", "text": plain(alert.summary, 3000)},
        {"type": "section", "fields": [plain(f) for f in facts]},
        {"type": "context", "elements": [plain(context)]},
    ]
    payload = {"text": _slack_escape(title(notification)), "blocks": blocks}
    return json.dumps(payload, separators=(",", ":")).encode()


def email_message(notification: Notification, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """Plain text, subject `[Metrify CRITICAL] subject: summary`; an escalation or a resolution threads
    under its opening."""
    alert = notification.alert
    msg = EmailMessage()
    msg["Subject"] = f"[Metrify {title(notification)[1:]}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = f"<{notification.delivery_id}@metrify>"
    if notification.event in ("escalated", "resolved"):
        opened = f"<{delivery_id(alert.alert_id, 'opened')}@metrify>"
        msg["In-Reply-To"] = opened
        msg["References"] = opened
    msg["X-Metrify-Delivery"] = notification.delivery_id
    msg["X-Metrify-Event"] = notification.event
    msg[TEAM_HEADER] = alert_team(alert.kind)
    lines = [
        f"{notification.severity.upper()} {alert.kind} alert #{alert.alert_id}: {notification.what}",
        "",
        f"Subject:      {alert.subject}",
        f"Team:         {alert_team(alert.kind)}",
        f"Summary:      {alert.summary}",
        f"Status:       {alert.status}",
        f"Opened:       {alert.opened_at:%Y-%m-%d %H:%M:%S %Z}",
        f"Last seen:    {alert.last_seen_at:%Y-%m-%d %H:%M:%S %Z}",
        f"Occurrences:  {alert.occurrences}",
        f"Condition:    {alert.dedup_key}",
    ]
    if alert.acked_at is not None:
        lines.append(f"Acknowledged: {alert.acked_at:%Y-%m-%d %H:%M:%S %Z} by {alert.acked_by}")
    if alert.resolved_at is not None:
        lines.append(f"Resolved:     {alert.resolved_at:%Y-%m-%d %H:%M:%S %Z} by {alert.resolved_by}")
    if alert.resolution:
        lines.append(f"Note:         {alert.resolution}")
    if alert.details:
        lines += ["", "Details:"] + [f"  {k}: {v}" for k, v in alert.details.items()]
    if notification.event != "test" and alert.resolved_at is None:
        lines += [
            "",
            f"Acknowledge: metrify alerts ack {alert.alert_id} --note '...'",
            f"Resolve:     metrify alerts resolve {alert.alert_id} --note '...'",
        ]
    msg.set_content("\n".join(lines) + "\n")
    return msg


# --- transports -------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 3xx then surfaces as an HTTPError: a failed attempt


_OPENER = urllib.request.build_opener(_NoRedirect)


def check_http_url(url: str, variable: str) -> str:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"{variable} must be an http(s) URL, got {url!r}")
    return url


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
    """POST `body` as JSON; the 2xx status, or `DeliveryError` for anything else."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
    )
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            response.read(_ERROR_BODY_CHARS)
            status = int(response.status)
    except urllib.error.HTTPError as err:
        detail = err.read(_ERROR_BODY_CHARS).decode(errors="replace").strip()
        raise DeliveryError(f"HTTP {err.code} {err.reason}" + (f": {detail}" if detail else "")) from err
    except urllib.error.URLError as err:
        raise DeliveryError(f"unreachable: {err.reason}") from err
    except (OSError, http.client.HTTPException) as err:  # timeouts, resets, malformed responses
        raise DeliveryError(f"{type(err).__name__}: {err}") from err
    if not 200 <= status < 300:
        raise DeliveryError(f"HTTP {status}")
    return status


@dataclass(frozen=True)
class WebhookChannel:
    """JSON POST of the alert and its event, signed with the shared secret."""

    url: str
    secret: str = field(repr=False)
    name: str = "webhook"

    def send(self, notification: Notification, timeout_s: float) -> None:
        body = webhook_body(notification)
        timestamp = str(int(time.time()))
        headers = {
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            DELIVERY_HEADER: notification.delivery_id,
            EVENT_HEADER: notification.event,
            TEAM_HEADER: alert_team(notification.alert.kind),
        }
        post(self.url, body, headers, timeout_s)


@dataclass(frozen=True)
class SlackChannel:
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, ...)."""

    url: str = field(repr=False)  # the URL is the credential
    name: str = "slack"

    def send(self, notification: Notification, timeout_s: float) -> None:
        post(self.url, slack_body(notification), {}, timeout_s)


@dataclass(frozen=True)
class EmailChannel:
    """Plain-text mail through an SMTP relay (STARTTLS and login optional)."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    name: str = "email"
    # Per team (metrify_assets/teams.py), the recipients of its alerts instead of `recipients`.
    recipients_by_team: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def recipients_for(self, notification: Notification) -> tuple[str, ...]:
        """The team's list for its alerts, else `recipients`; a test notification goes to every list,
        so a wrong team address shows before that team's first real alert."""
        if notification.event == "test":
            every = [*self.recipients, *(a for to in self.recipients_by_team.values() for a in to)]
            return tuple(dict.fromkeys(every))
        return self.recipients_by_team.get(alert_team(notification.alert.kind), self.recipients)

    def send(self, notification: Notification, timeout_s: float) -> None:
        message = email_message(notification, self.sender, self.recipients_for(notification))
        try:
            with smtplib.SMTP(self.host, self.port, timeout=timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as err:
            raise DeliveryError(f"SMTP refused every recipient: {err.recipients}") from err
        except smtplib.SMTPResponseException as err:
            reply = (
                err.smtp_error.decode(errors="replace")
                if isinstance(err.smtp_error, bytes)
                else err.smtp_error
            )
            raise DeliveryError(f"SMTP {err.smtp_code}: {reply}") from err
        except (smtplib.SMTPException, OSError) as err:  # unreachable, TLS, timeouts
            raise DeliveryError(f"{type(err).__name__}: {err}") from err
        if refused:
            raise DeliveryError(f"SMTP refused {', '.join(sorted(refused))}")


def configured_channels(resource: AlertChannelsResource) -> list[Channel]:
    """The channels the resource configures, in a fixed order; none means nothing is sent."""
    channels: list[Channel] = []
    if resource.webhook_url:
        if not resource.webhook_secret:
            raise ValueError("the alert webhook needs its signing secret (METRIFY_ALERT_WEBHOOK_SECRET)")
        channels.append(
            WebhookChannel(
                check_http_url(resource.webhook_url, "METRIFY_ALERT_WEBHOOK_URL"), resource.webhook_secret
            )
        )
    if resource.slack_webhook_url:
        channels.append(
            SlackChannel(check_http_url(resource.slack_webhook_url, "METRIFY_ALERT_SLACK_WEBHOOK_URL"))
        )
    if resource.smtp_host:
        if not resource.smtp_to:
            raise ValueError("alert e-mail needs recipients (METRIFY_ALERT_SMTP_TO)")
        channels.append(
            EmailChannel(
                host=resource.smtp_host,
                port=resource.smtp_port,
                sender=resource.smtp_from,
                recipients=tuple(resource.smtp_to),
                recipients_by_team={team: tuple(to) for team, to in resource.smtp_to_by_team.items()},
                user=resource.smtp_user,
                password=resource.smtp_password,
                starttls=resource.smtp_starttls,
            )
        )
    return channels


def trial_notification(now: datetime | None = None) -> Notification:
    """A notification that is not about any stored alert, for `metrify alerts test-channel`."""
    at = now or datetime.now(UTC)
    alert = AlertRow(
        alert_id=0,
        kind="test",
        severity="info",
        subject="metrify alerts test-channel",
        dedup_key="test",
        summary="a test notification: this channel reaches you",
        details={},
        opened_at=at,
        last_seen_at=at,
        occurrences=1,
        acked_at=None,
        acked_by=None,
        ack_note=None,
        resolved_at=None,
        resolved_by=None,
        resolution=None,
    )
    return Notification(alert, "test", f"metrify-test-{at:%Y%m%dT%H%M%S%f}")
