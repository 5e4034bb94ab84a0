"""Which touched days the refresh has rebuilt since they were touched, and which it still owes.

A batch or a reviewer's decision stamps the days it touched (`ops.ingest_days`, `ops.retouched_days`,
with the stamping transaction); `late_days_sensor` and `metrify run` then run `refresh_job` over them.
Each asset of that job that derives a day's rows from its readings or samples (REFRESHED) records, on
success, the days of its run in `ops.rebuilt_days` with the snapshot it began with. A touch is rebuilt
by an asset once such a run's snapshot saw the touch's transaction committed: it read what the touch
brought. A touch whose transaction was still open when the run began (a batch being ingested) is not,
whatever the clocks say. Until every refreshed asset has rebuilt the day, its rebuild is owed, and the
lifecycle keeps the day's hot rows (docs/lifecycle.md#rebuild-owed). Plain SQL, no frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

import psycopg

# The day-partitioned assets of `refresh_job` that rebuild a day from its hot rows (the dbt assets are
# one Dagster op, `metrify_dbt`): the downstream a touched day waits for.
REFRESHED = (
    "vee_meter_readings",
    "anomaly_scores",
    "enriched_meter_readings",
    "grid_stability",
    "metrify_dbt",
)


@dataclass(frozen=True)
class Began:
    """When a run began reading, and the snapshot it began with (`pg_snapshot` as text)."""

    at: datetime
    snapshot: str


def begin(conn: psycopg.Connection) -> Began:
    """Taken before a run reads its days: every touch this snapshot sees committed, the run reads.
    Commits (nothing else is open at a run's start), so the run's own transactions are its own."""
    row = conn.execute("SELECT clock_timestamp(), pg_current_snapshot()::text").fetchone()
    conn.commit()
    assert row is not None
    return Began(row[0], row[1])


def stamp(conn: psycopg.Connection, asset: str, first: date, last: date, began: Began) -> None:
    """Record that `asset` rebuilt the days `first`..`last` as of `began` (a newer stamp is kept)."""
    conn.execute(
        "INSERT INTO ops.rebuilt_days (asset, day, began_at, snapshot) "
        "SELECT %s, d::date, %s, %s::pg_snapshot FROM generate_series(%s::date, %s::date, interval '1 day') d "
        "ON CONFLICT (asset, day) DO UPDATE SET began_at = excluded.began_at, snapshot = excluded.snapshot "
        "WHERE ops.rebuilt_days.began_at <= excluded.began_at",
        (asset, began.at, began.snapshot, first, last),
    )


@dataclass(frozen=True)
class Owed:
    """A day whose rebuild is owed: its newest touch not rebuilt, and the assets that have not."""

    day: date
    batch_id: str
    source: str
    touched_at: datetime
    touches: int
    assets: tuple[str, ...]
    again: bool = False  # the touch is a stamp of `ops.retouched_days`, not the batch's own

    @property
    def reason(self) -> str:
        more = f" (and {self.touches - 1} earlier touches)" if self.touches > 1 else ""
        by = (
            f"touched again for {self.batch_id} ({self.source}: a reviewer's decision, a restore, a "
            "rebuild from raw, a withdrawal or a meter's first reading moved earlier)"
            if self.again
            else f"touched by {self.batch_id} ({self.source})"
        )
        return (
            f"rebuild owed: {by} at {self.touched_at:%Y-%m-%d %H:%M:%S %Z}"
            f"{more}, not rebuilt since by {', '.join(self.assets)}"
        )


def owed(
    conn: psycopg.Connection, days: Sequence[date], assets: Sequence[str] = REFRESHED
) -> dict[date, Owed]:
    """The days of `days` whose rebuild is owed (by the day indexes: the touches of these days only).

    A touch is a stored batch's day (`records > 0`: one that stored nothing brings nothing to rebuild)
    or a decision's; one stamped before migration 0020 (no transaction recorded) counts as rebuilt."""
    if not days:
        return {}
    rows = conn.execute(
        "WITH touched AS ("
        "  SELECT batch_id, source, day, recorded_at, xact, false AS again FROM ops.ingest_days "
        "  WHERE day = ANY(%(days)s) AND records > 0 AND xact IS NOT NULL "
        "  UNION ALL "
        "  SELECT batch_id, source, day, recorded_at, xact, true FROM ops.retouched_days "
        "  WHERE day = ANY(%(days)s) AND xact IS NOT NULL"
        ") "
        "SELECT t.day, t.batch_id, t.source, t.recorded_at, t.again, "
        "  array_agg(a.asset ORDER BY a.n) FILTER (WHERE r.snapshot IS NULL "
        "    OR NOT pg_visible_in_snapshot(t.xact, r.snapshot)) "
        "FROM touched t CROSS JOIN unnest(%(assets)s::text[]) WITH ORDINALITY AS a(asset, n) "
        "LEFT JOIN ops.rebuilt_days r ON r.asset = a.asset AND r.day = t.day "
        "GROUP BY t.day, t.batch_id, t.source, t.recorded_at, t.xact, t.again "
        "ORDER BY t.day, t.recorded_at DESC, t.xact DESC",
        {"days": list(days), "assets": list(assets)},
    ).fetchall()
    found: dict[date, Owed] = {}
    for day, batch_id, source, recorded_at, again, missing in rows:
        if not missing:
            continue
        earlier = found.get(day)
        if earlier is None:
            found[day] = Owed(day, batch_id, source, recorded_at, 1, tuple(missing), again)
        else:
            union = tuple(a for a in assets if a in earlier.assets or a in missing)
            found[day] = replace(earlier, touches=earlier.touches + 1, assets=union)
    return found
