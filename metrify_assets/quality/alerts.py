"""Quality alerts: a batch whose quality score falls below a threshold is recorded in `ops.quality_alerts`.

The ingest writes (or clears) the alert in the batch's own transaction, so a replay under a new
threshold leaves the alert state that threshold implies. The `quality_score_<source>` asset checks
read it back for the run's batches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg

from metrify_assets.quality.scoring import QualityScore


@dataclass(frozen=True)
class QualityAlert:
    batch_id: str
    source: str
    quality_score: float
    threshold: float
    dimensions: dict[str, float]  # completeness, accuracy, consistency, timeliness

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
    dims = {k: round(v, 4) for k, v in quality.as_dict().items() if k not in ("records", "score")}
    return QualityAlert(batch_id, source, score, threshold, dims)


def sync(conn: psycopg.Connection, batch_id: str, alert: QualityAlert | None) -> None:
    """Store the batch's alert (keeping when it was first raised) or clear a stale one."""
    if alert is None:
        conn.execute("DELETE FROM ops.quality_alerts WHERE batch_id = %s", (batch_id,))
        return
    conn.execute(
        "INSERT INTO ops.quality_alerts (batch_id, source, quality_score, threshold, dimensions) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (batch_id) DO UPDATE SET "
        "quality_score = excluded.quality_score, threshold = excluded.threshold, "
        "dimensions = excluded.dimensions",
        (alert.batch_id, alert.source, alert.quality_score, alert.threshold, json.dumps(alert.dimensions)),
    )
