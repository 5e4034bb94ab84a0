"""Deliver alerts to the configured channels, recording every attempt in `ops.alert_deliveries`.

One row per (alert, channel, event), and per severity reached for `escalated`. A tick (the sensor's,
or `metrify alerts send`):

1. **Enqueue.** Every new alert at or above the minimum severity gets a `pending` `opened` row per
   channel, once, even one that already cleared, while its clearing is news (`resolved_at` within
   `resolved_news` of the tick, a day by default: a grid alert state that began and ended within the
   hour the grid run covered is news all the same, but the cleared alerts of a backfill of last
   year's data, or of the months no channel was configured, are not sent when a channel is added):
   `announced` marks the alerts done, through a partial index of the rest. A standing alert (open or
   acknowledged) also gets one on a channel added since. A standing condition that `raise_alert` refreshes keeps its row, so it is not sent
   again. A standing alert whose severity rose above every severity a
   channel that was told of its opening has been (or is to be) told gets an `escalated` row on that
   channel. A resolved alert gets a `resolved` row on each channel that was told of its opening. The work is bounded by what is
   outstanding, not by history: openings and escalations look at the standing alerts only, and
   resolutions at the delivered openings not yet followed by one (`resolution_queued`, a partial
   index of migration 0007), so years of resolved alerts cost a tick nothing.
2. **Claim.** Due rows (`pending`, `next_attempt_at` empty or past: the partial index
   `alert_deliveries_due`) are claimed in a short transaction
   (`FOR UPDATE SKIP LOCKED`, then `next_attempt_at` pushed out by a lease), so two overlapping ticks
   never send the same row; a tick that dies mid-way leaves its rows to the next tick after the
   lease (at least once: receivers drop repeats by `delivery_id`).
3. **Attempt.** Up to `attempts_per_tick` tries, waiting `retry_wait_s`, then twice that, between
   them. Each try is committed (`attempts`, `last_attempt_at`, `last_error`). Delivered: `delivered`,
   `delivered_at`. Still failing: the next tick may try at `now + backoff_base_s * 2^attempts`
   (at most `backoff_cap_s`), until `max_attempts`, when the row is `failed` for good (`metrify
   alerts send --retry-failed` re-queues it). A channel that failed a delivery is left alone for
   the rest of the tick: a dead receiver costs one delivery's retries per tick, not one per alert.
   A delivery starts only while the tick's budget has at least `timeout_s` left; that timeout bounds
   each socket operation (connect, send, receive), so a try can take a few times as long, which the
   sensor's margin under its 60 s limit absorbs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg

from metrify_assets.alerts import store
from metrify_assets.alerts.channels import Channel, Notification

if TYPE_CHECKING:  # only a parameter's type: imported, it would bring Dagster into `metrify alerts list`
    from metrify_assets.resources.alerts import AlertChannelsResource

CLAIM_BATCH = 10
_RANK = store.SEVERITY_RANK_SQL


@dataclass(frozen=True)
class DeliveryPolicy:
    min_severity: str = "warning"
    attempts_per_tick: int = 3
    retry_wait_s: float = 0.5
    backoff_base_s: float = 15.0
    backoff_cap_s: float = 3600.0
    max_attempts: int = 15
    timeout_s: float = 10.0
    tick_budget_s: float | None = None  # None: no limit (the CLI); the sensor stays well under 60 s
    lease_s: float = 300.0  # a claimed row is not claimed again for this long (a dead tick's rows)
    # An alert that had cleared before any tick announced it is sent while its clearing is this recent.
    resolved_news: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        if self.min_severity not in store.SEVERITIES:
            raise ValueError(f"min_severity must be one of {store.SEVERITIES}, got {self.min_severity!r}")
        if self.attempts_per_tick < 1 or self.max_attempts < 1:
            raise ValueError("attempts_per_tick and max_attempts must be at least 1")

    @classmethod
    def of(cls, resource: AlertChannelsResource, tick_budget: bool = True) -> DeliveryPolicy:
        return cls(
            min_severity=resource.min_severity,
            attempts_per_tick=resource.attempts_per_tick,
            retry_wait_s=resource.retry_wait_s,
            backoff_base_s=resource.backoff_base_s,
            backoff_cap_s=resource.backoff_cap_s,
            max_attempts=resource.max_attempts,
            timeout_s=resource.timeout_s,
            tick_budget_s=resource.tick_budget_s if tick_budget else None,
        )

    def backoff(self, attempts: int) -> timedelta:
        """How long after a tick's last failed attempt the next tick may try again."""
        return timedelta(seconds=min(self.backoff_cap_s, self.backoff_base_s * 2**attempts))


@dataclass(frozen=True)
class Outcome:
    """One delivery's result in a tick."""

    alert_id: int
    channel: str
    event: str
    severity: str
    subject: str
    status: str  # delivered / pending (retried by a later tick) / failed (given up)
    attempts: int  # in all
    attempts_now: int  # in this tick
    error: str | None
    next_attempt_at: datetime | None

    @property
    def text(self) -> str:
        what = f"{self.channel} {self.event} #{self.alert_id} [{self.severity}] {self.subject}"
        tries = f"{self.attempts_now} attempt{'s' if self.attempts_now != 1 else ''}"
        if self.status == "delivered":
            return f"delivered {what} ({tries})"
        if self.status == "failed":
            return f"gave up on {what} after {self.attempts} attempts: {self.error}"
        retry = f"{self.next_attempt_at:%Y-%m-%d %H:%M:%S %Z}" if self.next_attempt_at else "next tick"
        return f"failed {what} ({tries}): {self.error}; retry after {retry}"


@dataclass
class DeliveryReport:
    channels: list[str]
    outcomes: list[Outcome] = field(default_factory=list)
    down: list[str] = field(default_factory=list)  # channels left alone for the rest of the tick
    out_of_time: bool = False

    def of_status(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def summary(self) -> str:
        if not self.outcomes:
            return f"nothing to deliver ({', '.join(self.channels)})"
        parts = []
        for status, label in (("delivered", "delivered"), ("pending", "to retry"), ("failed", "gave up")):
            done = self.of_status(status)
            if done:
                by_channel: dict[str, int] = {}
                for o in done:
                    by_channel[o.channel] = by_channel.get(o.channel, 0) + 1
                detail = ", ".join(f"{c} {n}" for c, n in by_channel.items())
                parts.append(f"{label} {len(done)} ({detail})")
        if self.out_of_time:
            parts.append("the rest next tick (time budget spent)")
        return "; ".join(parts)


@dataclass(frozen=True)
class _Task:
    alert_id: int
    event: str
    severity: str  # the row's: for `escalated`, the severity reached
    attempts: int
    previous_next_attempt_at: datetime | None


# Openings of new alerts, open or already resolved (the partial index of unannounced alerts), marked
# announced in the same statement so none is missed or queued twice.
ENQUEUE_ANNOUNCED = (
    "WITH fresh AS (UPDATE ops.alerts SET announced = true WHERE announced IS FALSE "
    "RETURNING alert_id, severity, resolved_at) "
    "INSERT INTO ops.alert_deliveries (alert_id, channel, event, severity, status, resolution_queued) "
    "SELECT f.alert_id, c.channel, 'opened', f.severity, 'pending', false "
    "FROM fresh f CROSS JOIN unnest(%(channels)s::text[]) AS c (channel) "
    f"WHERE {_RANK.format('f.severity')} >= {_RANK.format('%(min)s')} "
    "AND (f.resolved_at IS NULL OR f.resolved_at >= %(news_since)s) "
    "ON CONFLICT DO NOTHING"
)
# Openings on channels added since: the standing alerts (the partial index of open alerts).
ENQUEUE_OPENED = (
    "INSERT INTO ops.alert_deliveries (alert_id, channel, event, severity, status, resolution_queued) "
    "SELECT a.alert_id, c.channel, 'opened', a.severity, 'pending', false "
    "FROM ops.alerts a CROSS JOIN unnest(%(channels)s::text[]) AS c (channel) "
    f"WHERE a.resolved_at IS NULL AND {_RANK.format('a.severity')} >= {_RANK.format('%(min)s')} "
    "AND NOT EXISTS (SELECT 1 FROM ops.alert_deliveries d "
    "WHERE d.alert_id = a.alert_id AND d.channel = c.channel AND d.event = 'opened') "
    "ON CONFLICT DO NOTHING"
)
# Escalations: standing alerts whose severity is above all a channel told of the opening was told.
ENQUEUE_ESCALATED = (
    "INSERT INTO ops.alert_deliveries (alert_id, channel, event, severity, status) "
    "SELECT a.alert_id, o.channel, 'escalated', a.severity, 'pending' "
    "FROM ops.alerts a JOIN ops.alert_deliveries o ON o.alert_id = a.alert_id "
    "AND o.event = 'opened' AND o.status = 'delivered' "
    "WHERE a.resolved_at IS NULL AND o.channel = ANY(%(channels)s) "
    f"AND {_RANK.format('a.severity')} > (SELECT max({_RANK.format('t.severity')}) "
    "FROM ops.alert_deliveries t WHERE t.alert_id = a.alert_id AND t.channel = o.channel "
    "AND t.event <> 'resolved') "
    "ON CONFLICT DO NOTHING"
)
# Resolutions: the delivered openings not yet followed by one (their own partial index), each
# looking up its alert by primary key, and marked as their resolution is queued: a resolved alert is
# looked at once, never again.
ENQUEUE_RESOLVED = (
    "WITH due AS (UPDATE ops.alert_deliveries o SET resolution_queued = true "
    "WHERE o.event = 'opened' AND o.status = 'delivered' AND o.resolution_queued IS FALSE "
    "AND o.channel = ANY(%(channels)s) "
    "AND (SELECT a.resolved_at FROM ops.alerts a WHERE a.alert_id = o.alert_id) IS NOT NULL "
    "RETURNING o.alert_id, o.channel) "
    "INSERT INTO ops.alert_deliveries (alert_id, channel, event, severity, status) "
    "SELECT due.alert_id, due.channel, 'resolved', "
    "(SELECT a.severity FROM ops.alerts a WHERE a.alert_id = due.alert_id), 'pending' FROM due "
    "ON CONFLICT DO NOTHING"
)


def enqueue(
    conn: psycopg.Connection, channels: Sequence[str], min_severity: str, news_since: datetime
) -> int:
    """Add the `pending` rows due (see the module's docstring); the number added. An alert that
    cleared before `news_since` and was never announced is marked announced without a row."""
    params = {"channels": list(channels), "min": min_severity, "news_since": news_since}
    return sum(
        conn.execute(sql, params).rowcount
        for sql in (ENQUEUE_ANNOUNCED, ENQUEUE_OPENED, ENQUEUE_ESCALATED, ENQUEUE_RESOLVED)
    )


# Due rows of a channel (the partial index `alert_deliveries_due`): openings and escalations before
# resolutions, the most severe first, then the oldest.
CLAIM = (
    "WITH due AS (SELECT d.alert_id, d.event, d.severity, d.next_attempt_at AS previous, "
    f"{_RANK.format('a.severity')} AS rank "
    "FROM ops.alert_deliveries d JOIN ops.alerts a USING (alert_id) "
    "WHERE d.channel = %(channel)s AND d.status = 'pending' "
    "AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= %(now)s) "
    f"ORDER BY d.event = 'resolved', {_RANK.format('a.severity')} DESC, d.alert_id, "
    f"{_RANK.format('d.severity')} "
    "LIMIT %(limit)s FOR UPDATE OF d SKIP LOCKED) "
    "UPDATE ops.alert_deliveries d SET next_attempt_at = %(lease)s FROM due "
    "WHERE d.alert_id = due.alert_id AND d.channel = %(channel)s AND d.event = due.event "
    "AND d.severity = due.severity "
    "RETURNING d.alert_id, d.event, d.severity, d.attempts, due.previous, due.rank"
)


def _claim(conn: psycopg.Connection, channel: str, now: datetime, lease_s: float, limit: int) -> list[_Task]:
    """Claim up to `limit` due rows of a channel: openings and escalations first, the most severe
    first, then the oldest."""
    with conn.transaction():
        rows = conn.execute(
            CLAIM,
            {"channel": channel, "now": now, "lease": now + timedelta(seconds=lease_s), "limit": limit},
        ).fetchall()
    rows.sort(key=lambda r: (r[1] == "resolved", -r[5], r[0], store.SEVERITIES.index(r[2])))
    return [_Task(*row[:5]) for row in rows]


def _release(conn: psycopg.Connection, channel: str, tasks: Sequence[_Task]) -> None:
    """Give back claimed rows that were not attempted, as they were."""
    for task in tasks:
        conn.execute(
            "UPDATE ops.alert_deliveries SET next_attempt_at = %s "
            "WHERE alert_id = %s AND channel = %s AND event = %s AND severity = %s AND status = 'pending'",
            (task.previous_next_attempt_at, task.alert_id, channel, task.event, task.severity),
        )


def _record(
    conn: psycopg.Connection,
    channel: str,
    task: _Task,
    at: datetime,
    error: str | None,
    status: str,
    next_attempt_at: datetime | None,
    sent_severity: str | None = None,
) -> None:
    """One attempt, committed at once. A delivery keeps the error of the attempt before it; a delivered
    opening records the severity it announced (an escalation before its delivery is then not news)."""
    conn.execute(
        "UPDATE ops.alert_deliveries SET attempts = attempts + 1, last_attempt_at = %(at)s, "
        "last_error = coalesce(%(error)s, last_error), status = %(status)s, next_attempt_at = %(next)s, "
        "delivered_at = CASE WHEN %(status)s = 'delivered' THEN %(at)s END, "
        "severity = CASE WHEN %(status)s = 'delivered' AND event = 'opened' "
        "THEN coalesce(%(sent)s, severity) ELSE severity END "
        "WHERE alert_id = %(alert_id)s AND channel = %(channel)s AND event = %(event)s "
        "AND severity = %(severity)s",
        {
            "at": at,
            "error": error,
            "status": status,
            "next": next_attempt_at,
            "sent": sent_severity,
            "alert_id": task.alert_id,
            "channel": channel,
            "event": task.event,
            "severity": task.severity,
        },
    )


def _error_text(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text[:1000]


def deliver_pending(
    conn: psycopg.Connection,
    channels: Sequence[Channel],
    policy: DeliveryPolicy,
    now: datetime | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Enqueue, claim and deliver what is due on each channel (see the module's docstring).

    `conn` must be in autocommit mode: each claim and each attempt commits on its own. `now` fixes the
    tick's clock (tests); by default it is the wall clock at each step.
    """
    if not conn.autocommit:
        raise ValueError("deliver_pending commits each claim and attempt: pass an autocommit connection")
    clock: Callable[[], datetime] = (lambda: now) if now is not None else (lambda: datetime.now(UTC))
    started = time.monotonic()

    def time_left() -> float:
        if policy.tick_budget_s is None:
            return float("inf")
        return policy.tick_budget_s - (time.monotonic() - started)

    def out_of_time() -> bool:  # a delivery starts only with time for one whole try left
        return time_left() < policy.timeout_s

    report = DeliveryReport(channels=[c.name for c in channels])
    for _ in range(3):  # a delivered opening of a resolved alert makes its resolution due: next pass
        enqueue(conn, report.channels, policy.min_severity, clock() - policy.resolved_news)
        attempted = False
        for channel in channels:
            while channel.name not in report.down:
                if out_of_time():
                    report.out_of_time = True
                    return report
                tasks = _claim(conn, channel.name, clock(), policy.lease_s, CLAIM_BATCH)
                if not tasks:
                    break
                for i, task in enumerate(tasks):
                    if channel.name in report.down or out_of_time():
                        _release(conn, channel.name, tasks[i:])
                        report.out_of_time = out_of_time()
                        break
                    outcome = _deliver(conn, channel, task, policy, clock, sleep, time_left)
                    if outcome is None:
                        continue
                    attempted = True
                    report.outcomes.append(outcome)
                    if on_outcome is not None:
                        on_outcome(outcome)
                    if outcome.status != "delivered":
                        report.down.append(channel.name)
            if report.out_of_time:
                return report
        if not attempted:
            break
    return report


def _deliver(
    conn: psycopg.Connection,
    channel: Channel,
    task: _Task,
    policy: DeliveryPolicy,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
    time_left: Callable[[], float],
) -> Outcome | None:
    try:
        alert = store.get(conn, task.alert_id)
    except store.AlertNotFoundError:  # deleted since the claim (its deliveries went with it)
        return None
    notification = Notification.of(alert, task.event, task.severity if task.event == "escalated" else None)
    attempts = task.attempts
    tries = min(policy.attempts_per_tick, policy.max_attempts - attempts)

    def outcome(status: str, error: str | None, next_at: datetime | None) -> Outcome:
        return Outcome(
            alert.alert_id,
            channel.name,
            task.event,
            notification.severity,
            alert.subject,
            status,
            attempts,
            attempts - task.attempts,
            error,
            next_at,
        )

    if tries <= 0:  # max_attempts lowered below what was already tried
        conn.execute(
            "UPDATE ops.alert_deliveries SET status = 'failed', next_attempt_at = NULL "
            "WHERE alert_id = %s AND channel = %s AND event = %s AND severity = %s",
            (task.alert_id, channel.name, task.event, task.severity),
        )
        return outcome("failed", f"gave up after {attempts} attempts", None)
    for i in range(tries):
        try:
            channel.send(notification, policy.timeout_s)
        except Exception as err:  # noqa: BLE001 - any failure of a channel is a failed attempt, recorded
            error = _error_text(err)
        else:
            attempts += 1
            _record(conn, channel.name, task, clock(), None, "delivered", None, alert.severity)
            return outcome("delivered", None, None)
        attempts += 1
        wait = policy.retry_wait_s * 2**i
        if i < tries - 1 and time_left() >= wait + policy.timeout_s:  # another try in this tick
            _record(
                conn,
                channel.name,
                task,
                clock(),
                error,
                "pending",
                clock() + timedelta(seconds=policy.lease_s),
            )
            sleep(wait)
            continue
        if attempts >= policy.max_attempts:
            _record(conn, channel.name, task, clock(), error, "failed", None)
            return outcome("failed", error, None)
        next_at = clock() + policy.backoff(attempts)
        _record(conn, channel.name, task, clock(), error, "pending", next_at)
        return outcome("pending", error, next_at)
    raise AssertionError("unreachable: every try returns or continues, and the last one returns")


def retry_failed(conn: psycopg.Connection, channels: Sequence[str] | None = None) -> int:
    """Queue deliveries that gave up once more, from zero attempts (their last error kept)."""
    return conn.execute(
        "UPDATE ops.alert_deliveries SET status = 'pending', attempts = 0, next_attempt_at = NULL "
        "WHERE status = 'failed' AND (%(channels)s::text[] IS NULL OR channel = ANY(%(channels)s))",
        {"channels": list(channels) if channels is not None else None},
    ).rowcount


@dataclass(frozen=True)
class DeliveryRow:
    alert_id: int
    channel: str
    event: str
    severity: str
    status: str
    attempts: int
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None

    @property
    def text(self) -> str:
        mark = {"delivered": "ok", "pending": "pending", "failed": "FAILED"}[self.status]
        tries = (
            f" x{self.attempts}"
            if self.attempts > 1 or (self.attempts and self.status != "delivered")
            else ""
        )
        event = f"escalated to {self.severity}" if self.event == "escalated" else self.event
        return f"{self.channel} {event} {mark}{tries}"


def deliveries(conn: psycopg.Connection, alert_ids: Sequence[int]) -> dict[int, list[DeliveryRow]]:
    """The deliveries of these alerts, by alert: openings, escalations, then resolutions, by channel."""
    rows = conn.execute(
        "SELECT alert_id, channel, event, severity, status, attempts, last_error, last_attempt_at, "
        "next_attempt_at, delivered_at FROM ops.alert_deliveries WHERE alert_id = ANY(%s) "
        "ORDER BY alert_id, array_position(ARRAY['opened', 'escalated', 'resolved'], event), "
        f"{_RANK.format('severity')}, channel",
        (list(alert_ids),),
    ).fetchall()
    found: dict[int, list[DeliveryRow]] = {}
    for row in rows:
        found.setdefault(row[0], []).append(DeliveryRow(*row))
    return found
