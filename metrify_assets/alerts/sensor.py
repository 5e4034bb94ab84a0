"""`alert_delivery_sensor`: every 30 s, deliver new alerts (escalations, resolutions) to the channels.

It requests no runs: a tick is the delivery (`alerts.delivery.deliver_pending`), kept within a time
budget far below the sensor's 60 s evaluation limit. Its skip reason says what the tick delivered;
its cursor keeps running totals (`delivered`, `retried`, `gave_up`) and the last tick's summary.
With no channel configured it delivers nothing and says so: the alerts are still in `ops.alerts`.
"""

from __future__ import annotations

import json

import dagster as dg

from metrify_assets.alerts.channels import configured_channels
from metrify_assets.alerts.delivery import DeliveryPolicy, deliver_pending
from metrify_assets.resources import AlertChannelsResource, PostgresResource

NO_CHANNEL = (
    "no alert channel configured (METRIFY_ALERT_WEBHOOK_URL, METRIFY_ALERT_SLACK_WEBHOOK_URL, "
    "METRIFY_ALERT_SMTP_HOST): alerts are recorded in ops.alerts, not sent"
)


def _totals(cursor: str | None) -> dict[str, int]:
    try:
        found = json.loads(cursor) if cursor else {}
    except json.JSONDecodeError:
        found = {}
    return {k: int(found.get(k, 0)) for k in ("delivered", "retried", "gave_up")}


@dg.sensor(
    name="alert_delivery_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Delivers new alerts, escalations and resolutions from ops.alerts to the configured channels "
    "(webhook, Slack-compatible webhook, e-mail), with retries; every attempt in ops.alert_deliveries.",
)
def alert_delivery_sensor(
    context: dg.SensorEvaluationContext, postgres: PostgresResource, alert_channels: AlertChannelsResource
) -> dg.SensorResult | dg.SkipReason:
    channels = configured_channels(alert_channels)
    if not channels:
        return dg.SkipReason(NO_CHANNEL)
    with postgres.connect(autocommit=True) as conn:
        report = deliver_pending(conn, channels, DeliveryPolicy.of(alert_channels))
    for outcome in report.outcomes:
        if outcome.status == "delivered":
            context.log.info(outcome.text)
        else:
            context.log.warning(outcome.text)
    totals = _totals(context.cursor)
    totals["delivered"] += len(report.of_status("delivered"))
    totals["retried"] += len(report.of_status("pending"))
    totals["gave_up"] += len(report.of_status("failed"))
    cursor = json.dumps({**totals, "last": report.summary})
    return dg.SensorResult(skip_reason=report.summary, cursor=cursor)


defs = dg.Definitions(sensors=[alert_delivery_sensor])
