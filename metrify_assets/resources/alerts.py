"""Alert channels as a resource: where notifications go, and how hard to try (docs/alerts.md).

Plain settings only: `alerts.channels.configured_channels` turns them into the channels that send,
and `alerts.delivery.DeliveryPolicy.of` into the retry policy. Secrets (the webhook's signing secret,
the SMTP password) are `dg.EnvVar`s in the code location.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field


class AlertChannelsResource(dg.ConfigurableResource):
    """The configured channels (none: alerts are recorded, not sent) and the delivery policy."""

    webhook_url: str | None = Field(default=None, description="JSON POST, HMAC-SHA256 signed")
    webhook_secret: str | None = Field(default=None, description="signing secret of the webhook")
    slack_webhook_url: str | None = Field(default=None, description="Slack-compatible incoming webhook")
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "metrify@localhost"
    smtp_to: list[str] = Field(default_factory=list, description="recipients")
    smtp_to_by_team: dict[str, list[str]] = Field(
        default_factory=dict, description="per team, recipients of its alerts instead of smtp_to"
    )
    smtp_starttls: bool = False
    min_severity: str = Field(default="warning", description="info, warning or critical")
    timeout_s: float = Field(
        default=10.0,
        description="per socket operation (connect, each send or receive), so one HTTP request or SMTP "
        "conversation can take a few times as long; a tick starts a delivery only with this much budget left",
    )
    attempts_per_tick: int = Field(
        default=3, description="attempts in one tick, waiting retry_wait_s, x2, ..."
    )
    retry_wait_s: float = 0.5
    backoff_base_s: float = Field(
        default=15.0, description="then the next tick's attempt waits base x 2^attempts (capped)"
    )
    backoff_cap_s: float = 3600.0
    max_attempts: int = Field(default=15, description="after this many attempts a delivery is `failed`")
    tick_budget_s: float = Field(
        default=40.0,
        description="a sensor tick starts a delivery (or a retry) only while at least timeout_s of this is left",
    )

    @property
    def configured(self) -> bool:
        return bool(self.webhook_url or self.slack_webhook_url or self.smtp_host)
