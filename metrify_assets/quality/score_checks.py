"""`quality_score_<source>`: a non-blocking check on each validated asset that fails on a quality alert.

It runs after the ingest in the same run (the ingest job selects its asset's checks) and judges the
batches that run wrote: the ledger rows with the run's id, or, when run on its own, the source's
latest batch. A failure warns (the rows are stored already; reviewers decide), it does not block.
No `from __future__ import annotations`: dagster must resolve the `context` annotation.
"""

import json

import dagster as dg
import pandas as pd

from metrify_assets.contracts import CONTRACTS
from metrify_assets.metadata import figure
from metrify_assets.resources import PostgresResource, QualityResource
from metrify_assets.storage.frames import read_frame

BATCHES_SQL = """
SELECT l.batch_id, l.quality_score, a.threshold, a.dimensions
FROM ops.ingest_ledger l LEFT JOIN ops.quality_alerts a USING (batch_id)
WHERE l.source = %(source)s AND (l.run_id = %(run_id)s OR (
    NOT EXISTS (SELECT 1 FROM ops.ingest_ledger r WHERE r.source = %(source)s AND r.run_id = %(run_id)s)
    AND l.batch_id = (SELECT batch_id FROM ops.ingest_ledger WHERE source = %(source)s
                      ORDER BY processed_at DESC LIMIT 1)))
ORDER BY l.batch_id
"""


def score_check_result(source: str, batches: pd.DataFrame, threshold: float) -> dg.AssetCheckResult:
    """Fail when any judged batch raised an alert; the lowest score and the alerts go in metadata."""
    alerts = batches[batches["dimensions"].notna()]
    lowest = batches.sort_values("quality_score").iloc[0] if len(batches) else None
    metadata: dict[str, dg.MetadataValue] = {
        "batches": dg.MetadataValue.int(len(batches)),
        "alerts": dg.MetadataValue.int(len(alerts)),
        "threshold": figure(float(alerts["threshold"].min()) if len(alerts) else threshold),
    }
    if lowest is not None:
        metadata["quality_score"] = figure(float(lowest["quality_score"]))
        metadata["batch_id"] = dg.MetadataValue.text(str(lowest["batch_id"]))
    if len(alerts):
        metadata["alert_dimensions"] = dg.MetadataValue.json(
            {str(r.batch_id): json.loads(str(r.dimensions)) for r in alerts.itertuples()}
        )
    description = (
        "no batch to judge"
        if lowest is None
        else f"{len(alerts)} of {len(batches)} batch(es) below the alert threshold; "
        f"lowest score {float(lowest['quality_score']):.1f} ({lowest['batch_id']})"
    )
    return dg.AssetCheckResult(
        check_name=f"quality_score_{source}",
        passed=lowest is not None and alerts.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata,
    )


def build_score_check(source: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=f"validated_{source}",
        name=f"quality_score_{source}",
        blocking=False,
        description=f"The {source} batch quality score meets the alert threshold "
        "(METRIFY_QUALITY_ALERT_THRESHOLD, default 95); alerts are in ops.quality_alerts.",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, postgres: PostgresResource, quality: QualityResource
    ) -> dg.AssetCheckResult:
        with postgres.connect() as conn:
            batches = read_frame(
                conn, BATCHES_SQL, {"source": source, "run_id": context.op_execution_context.run_id}
            )
        return score_check_result(source, batches, quality.alert_threshold)

    return _check


SCORE_CHECKS = [build_score_check(source) for source in CONTRACTS]
defs = dg.Definitions(asset_checks=SCORE_CHECKS)
