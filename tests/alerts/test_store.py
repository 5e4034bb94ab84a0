"""ops.alerts against real PostgreSQL: a standing condition is one alert until it resolves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from metrify_assets.alerts.store import (
    Alert,
    AlertNotFoundError,
    acknowledge,
    get,
    list_alerts,
    raise_alert,
    resolve,
    resolve_condition,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def node_alert(severity: str = "warning", summary: str = "N1 in alert") -> Alert:
    return Alert("grid_state", severity, "grid node N1", "grid_state:N1", summary, {"rule": "alert_5min"})


def test_a_standing_condition_is_one_alert_refreshed_until_it_resolves(pg: psycopg.Connection) -> None:
    first = raise_alert(pg, node_alert(), at=T0)
    again = raise_alert(pg, node_alert("critical", "N1 in emergency"), at=T0 + timedelta(hours=1))
    assert first.new and not again.new and again.alert_id == first.alert_id
    row = get(pg, first.alert_id)
    assert (row.occurrences, row.severity, row.summary) == (2, "critical", "N1 in emergency")
    assert (row.opened_at, row.last_seen_at) == (T0, T0 + timedelta(hours=1))
    # A lower severity later does not downgrade the standing alert.
    raise_alert(pg, node_alert("warning"), at=T0 + timedelta(hours=2))
    assert get(pg, first.alert_id).severity == "critical"

    assert (
        resolve_condition(pg, "grid_state:N1", "back to normal", at=T0 + timedelta(hours=3)) == first.alert_id
    )
    assert resolve_condition(pg, "grid_state:N1", "back to normal") is None  # nothing open any more
    reopened = raise_alert(pg, node_alert(), at=T0 + timedelta(hours=4))
    assert reopened.new and reopened.alert_id != first.alert_id
    assert [a.alert_id for a in list_alerts(pg, "all")] == [reopened.alert_id, first.alert_id]
    assert [a.status for a in list_alerts(pg, "all")] == ["open", "resolved"]


def test_ack_keeps_an_alert_open_and_resolve_by_hand_closes_it(pg: psycopg.Connection) -> None:
    raised = raise_alert(pg, node_alert())
    acked = acknowledge(pg, raised.alert_id, by="ana", note="looking at the node")
    assert (acked.status, acked.acked_by) == ("acked", "ana")
    assert [a.alert_id for a in list_alerts(pg, "acked")] == [raised.alert_id]
    assert raise_alert(pg, node_alert()).alert_id == raised.alert_id  # still the standing one
    closed = resolve(pg, raised.alert_id, by="ana", note="breaker reset")
    assert (closed.status, closed.resolved_by, closed.resolution) == ("resolved", "ana", "breaker reset")
    assert closed.ack_note == "looking at the node"
    assert list_alerts(pg, "open") == []
    with pytest.raises(AlertNotFoundError, match="no alert 999999"):
        resolve(pg, 999_999, by="ana")


def test_unknown_severity_or_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="severity"):
        Alert("quality", "urgent", "meter_readings", "quality:meter_readings", "low score")
    with pytest.raises(ValueError, match=r"kind must be one of .*kafka_expired"):
        Alert("qualty", "warning", "meter_readings", "quality:meter_readings", "low score")


def test_a_condition_resolves_only_after_its_quiet_period(pg: psycopg.Connection) -> None:
    raised = raise_alert(pg, node_alert(), at=T0)
    quiet = timedelta(minutes=30)
    assert resolve_condition(pg, "grid_state:N1", "ok", at=T0 + timedelta(minutes=10), quiet=quiet) is None
    raise_alert(pg, node_alert(), at=T0 + timedelta(minutes=20))  # it came back: still the same alert
    assert resolve_condition(pg, "grid_state:N1", "ok", at=T0 + timedelta(minutes=45), quiet=quiet) is None
    assert (
        resolve_condition(pg, "grid_state:N1", "ok", at=T0 + timedelta(minutes=50), quiet=quiet)
        == raised.alert_id
    )
    assert [a.occurrences for a in list_alerts(pg, "all")] == [2]
