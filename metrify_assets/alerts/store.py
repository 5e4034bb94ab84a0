"""`ops.alerts`: raise, refresh, acknowledge and resolve alerts; the only writer of that table.

A standing condition is one alert: `raise_alert` with the dedup key of an open alert refreshes that
row (last seen, occurrences, the higher severity, the newest summary) instead of opening another, so
an hourly job that finds the same fault every hour does not page anyone every hour. The unique
partial index of migration 0007 makes this hold under concurrent runs too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import psycopg
from psycopg.rows import class_row

from metrify_assets.storage.audit import Caller

SEVERITIES = ("info", "warning", "critical")
# What raises alerts (docs/alerts.md has each kind's dedup key and what resolves it).
KINDS = ("grid_state", "kafka_expired", "kafka_restarted", "lifecycle", "quality", "run_failure")
Status = Literal["open", "acked", "resolved", "all"]


@dataclass(frozen=True)
class Alert:
    """A condition worth a person's attention, as its raiser describes it."""

    kind: str  # one of KINDS
    severity: str  # info / warning / critical
    subject: str  # what it is about: a grid node, a source, a job
    dedup_key: str  # the condition: one open alert per key
    summary: str  # one line a person reads
    details: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class RaisedAlert:
    alert_id: int
    new: bool  # False: an open alert of the same condition was refreshed
    severity: str = "info"  # the alert's severity now (the higher of the two on a refresh)
    escalated: bool = False  # a refresh raised the severity (channels told of the opening are told again)


@dataclass(frozen=True)
class AlertRow:
    """An alert as stored."""

    alert_id: int
    kind: str
    severity: str
    subject: str
    dedup_key: str
    summary: str
    details: dict[str, object]
    opened_at: datetime
    last_seen_at: datetime
    occurrences: int
    acked_at: datetime | None
    acked_by: str | None
    ack_note: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None

    @property
    def status(self) -> str:
        if self.resolved_at is not None:
            return "resolved"
        return "acked" if self.acked_at is not None else "open"


class AlertNotFoundError(LookupError):
    def __init__(self, alert_id: int) -> None:
        super().__init__(f"no alert {alert_id} (see `metrify alerts list --status all`)")


# SQL: a severity's rank (1 info .. 3 critical), `.format(column)`; delivery.py orders and filters by it.
SEVERITY_RANK_SQL = "array_position(ARRAY[" + ", ".join(f"'{s}'" for s in SEVERITIES) + "], {})"


def raise_alert(conn: psycopg.Connection, alert: Alert, at: datetime | None = None) -> RaisedAlert:
    """Open an alert, or refresh the open alert of the same condition (`escalated` when that raised its
    severity, as the statement saw the open alert; `alerts.delivery` tells the channels either way)."""
    row = conn.execute(
        "WITH prior AS (SELECT severity FROM ops.alerts WHERE dedup_key = %(dedup_key)s AND resolved_at IS NULL) "
        "INSERT INTO ops.alerts AS a (kind, severity, subject, dedup_key, summary, details, "
        "opened_at, last_seen_at) VALUES (%(kind)s, %(severity)s, %(subject)s, %(dedup_key)s, %(summary)s, "
        "%(details)s, coalesce(%(at)s, now()), coalesce(%(at)s, now())) "
        "ON CONFLICT (dedup_key) WHERE resolved_at IS NULL DO UPDATE SET "
        "last_seen_at = greatest(a.last_seen_at, excluded.last_seen_at), occurrences = a.occurrences + 1, "
        "summary = excluded.summary, details = excluded.details, "
        f"severity = CASE WHEN {SEVERITY_RANK_SQL.format('excluded.severity')} > "
        f"{SEVERITY_RANK_SQL.format('a.severity')} THEN excluded.severity ELSE a.severity END "
        "RETURNING alert_id, (xmax = 0) AS inserted, severity, (SELECT severity FROM prior)",
        {
            "kind": alert.kind,
            "severity": alert.severity,
            "subject": alert.subject,
            "dedup_key": alert.dedup_key,
            "summary": alert.summary,
            "details": json.dumps(dict(alert.details), default=str),
            "at": at,
        },
    ).fetchone()
    assert row is not None  # INSERT ... RETURNING always returns the row
    alert_id, inserted, severity, prior = int(row[0]), bool(row[1]), str(row[2]), row[3]
    escalated = not inserted and prior is not None and SEVERITIES.index(severity) > SEVERITIES.index(prior)
    return RaisedAlert(alert_id=alert_id, new=inserted, severity=severity, escalated=escalated)


def resolve_condition(
    conn: psycopg.Connection,
    dedup_key: str,
    note: str,
    at: datetime | None = None,
    by: str = "metrify",
    quiet: timedelta = timedelta(0),
) -> int | None:
    """The condition cleared: resolve its open alert (if any) and return its id.

    `quiet` is hysteresis: the alert resolves only when it was last seen at least that long before
    `at`, so a condition that comes and goes (a feed hovering at the threshold, batches of a bad and a
    good partition interleaving) stays one alert instead of opening, resolving and notifying again.
    """
    row = conn.execute(
        "UPDATE ops.alerts SET resolved_at = coalesce(%(at)s, now()), resolved_by = %(by)s, resolution = %(note)s "
        "WHERE dedup_key = %(key)s AND resolved_at IS NULL "
        "AND last_seen_at <= coalesce(%(at)s, now()) - %(quiet)s RETURNING alert_id",
        {"at": at, "by": by, "note": note, "key": dedup_key, "quiet": quiet},
    ).fetchone()
    return int(row[0]) if row else None


def acknowledge(
    conn: psycopg.Connection, alert_id: int, by: str, note: str | None = None, caller: Caller | None = None
) -> AlertRow:
    """Someone is on it: the alert stays open (and keeps refreshing) but shows who took it. With a
    `caller`, an `alert.ack` audit entry in the same transaction."""
    row = conn.execute(
        "UPDATE ops.alerts SET acked_at = coalesce(acked_at, now()), acked_by = coalesce(acked_by, %s), "
        "ack_note = coalesce(%s, ack_note) WHERE alert_id = %s RETURNING alert_id",
        (by, note, alert_id),
    ).fetchone()
    if row is None:
        raise AlertNotFoundError(alert_id)
    if caller is not None:
        caller.record(conn, "alert.ack", f"alert:{alert_id}", {"note": note}, 1)
    return get(conn, alert_id)


def resolve(
    conn: psycopg.Connection, alert_id: int, by: str, note: str | None = None, caller: Caller | None = None
) -> AlertRow:
    """Close an alert by hand; resolving a resolved alert keeps its first resolution. With a
    `caller`, an `alert.resolve` audit entry in the same transaction."""
    row = conn.execute(
        "UPDATE ops.alerts SET resolved_at = coalesce(resolved_at, now()), "
        "resolved_by = coalesce(resolved_by, %s), resolution = coalesce(resolution, %s) "
        "WHERE alert_id = %s RETURNING alert_id",
        (by, note, alert_id),
    ).fetchone()
    if row is None:
        raise AlertNotFoundError(alert_id)
    if caller is not None:
        caller.record(conn, "alert.resolve", f"alert:{alert_id}", {"note": note}, 1)
    return get(conn, alert_id)


_COLUMNS = (
    "alert_id, kind, severity, subject, dedup_key, summary, details, opened_at, last_seen_at, "
    "occurrences, acked_at, acked_by, ack_note, resolved_at, resolved_by, resolution"
)
_STATUS_FILTER = {
    "open": "resolved_at IS NULL",
    "acked": "resolved_at IS NULL AND acked_at IS NOT NULL",
    "resolved": "resolved_at IS NOT NULL",
    "all": "true",
}


def get(conn: psycopg.Connection, alert_id: int) -> AlertRow:
    with conn.cursor(row_factory=class_row(AlertRow)) as cur:
        found = cur.execute(f"SELECT {_COLUMNS} FROM ops.alerts WHERE alert_id = %s", (alert_id,)).fetchone()
    if found is None:
        raise AlertNotFoundError(alert_id)
    return found


def list_alerts(
    conn: psycopg.Connection,
    status: Status = "open",
    kind: str | None = None,
    limit: int = 100,
    severity: str | None = None,
) -> list[AlertRow]:
    """Alerts newest first; `open` includes acknowledged ones (they still stand)."""
    where = _STATUS_FILTER[status]
    params: list[object] = []
    if kind is not None:
        where += " AND kind = %s"
        params.append(kind)
    if severity is not None:
        where += " AND severity = %s"
        params.append(severity)
    params.append(limit)
    with conn.cursor(row_factory=class_row(AlertRow)) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM ops.alerts WHERE {where} ORDER BY opened_at DESC, alert_id DESC LIMIT %s",
            params,
        ).fetchall()
