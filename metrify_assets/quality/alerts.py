"""Quality alerts: a batch whose quality score falls below a threshold is recorded in `ops.quality_alerts`.

The ingest writes (or clears) the batch's row in the batch's own transaction, so a replay under a new
threshold leaves the alert state that threshold implies. The `quality_score_<source>` asset checks
read it back for the run's batches. For people, low quality of a source is one standing condition in
`ops.alerts` (dedup key `quality:<source>`): every low batch refreshes it, and a batch of the source
that meets the threshold resolves it once the last low batch is `RESOLVE_QUIET` old, so a bad feed
notifies once, not once per batch, and a feed hovering at the threshold does not open, resolve and
notify again and again. Declared backfills (every message declared history) are a condition of their
own (`quality:<source>:backfill`): a good import says nothing about the live feed, and a bad one
should not be cleared by it. Dead-letter replays are another (`quality:<source>:replay`): a good
replay of a few fixed records says nothing about an import or the feed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from metrify_assets.alerts.store import Alert, raise_alert, resolve_condition
from metrify_assets.quality.scoring import QualityScore

# A good batch resolves the source's condition only when the last low batch is at least this old.
RESOLVE_QUIET = timedelta(minutes=30)


@dataclass(frozen=True)
class QualityAlert:
    batch_id: str
    source: str
    quality_score: float
    threshold: float
    dimensions: dict[str, float]  # completeness, accuracy, consistency, timeliness (absent for a backfill)

    @property
    def message(self) -> str:
        worst = min(self.dimensions, key=self.dimensions.__getitem__)
        return (
            f"quality alert: {self.source} batch {self.batch_id} scored {self.quality_score:.1f} "
            f"< {self.threshold:g} (weakest: {worst} {self.dimensions[worst]:.3f})"
        )


def evaluate(batch_id: str, source: str, quality: QualityScore, threshold: float) -> QualityAlert | None:
    """The alert a batch raises, or None when its score meets the threshold."""
    score = round(quality.score, 2)
    if score >= threshold:
        return None
    dims = {k: round(v, 4) for k, v in quality.dimensions().items()}
    return QualityAlert(batch_id, source, score, threshold, dims)


def condition_key(source: str, backfill: bool = False, replay: bool = False) -> str:
    """The dedup key of a source's low-quality condition in `ops.alerts`: the live feed, declared
    backfills, or dead-letter replays (`replay` wins: a replay is declared history too)."""
    if replay:
        return f"quality:{source}:replay"
    return f"quality:{source}:backfill" if backfill else f"quality:{source}"


def sync(
    conn: psycopg.Connection,
    batch_id: str,
    source: str,
    alert: QualityAlert | None,
    backfill: bool = False,
    replay: bool = False,
    at: datetime | None = None,
) -> None:
    """Store the batch's alert (keeping when it was first raised) or clear a stale one, and raise or
    resolve the source's standing condition (`backfill`: every message of the batch was declared
    history; `replay`: a dead-letter replay). `at` is when the batch was processed (default: now):
    the condition resolves only when it was last raised `RESOLVE_QUIET` before that."""
    key = condition_key(source, backfill, replay)
    if alert is None:
        conn.execute("DELETE FROM ops.quality_alerts WHERE batch_id = %s", (batch_id,))
        resolve_condition(
            conn, key, f"batch {batch_id} met the quality threshold", at=at, quiet=RESOLVE_QUIET
        )
        return
    label = " (replay)" if replay else " (backfill)" if backfill else ""
    raise_alert(
        conn,
        Alert(
            kind="quality",
            severity="warning",
            subject=f"{source}{label}",
            dedup_key=key,
            summary=alert.message,
            details={
                "batch_id": batch_id,
                "quality_score": alert.quality_score,
                "threshold": alert.threshold,
                **alert.dimensions,
            },
        ),
        at=at,
    )
    conn.execute(
        "INSERT INTO ops.quality_alerts (batch_id, source, quality_score, threshold, dimensions) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (batch_id) DO UPDATE SET "
        "quality_score = excluded.quality_score, threshold = excluded.threshold, "
        "dimensions = excluded.dimensions",
        (alert.batch_id, alert.source, alert.quality_score, alert.threshold, json.dumps(alert.dimensions)),
    )
