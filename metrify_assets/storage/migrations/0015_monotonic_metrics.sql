-- Migration 0015: what keeps the exporter's counters monotonic and its scrapes cheap (docs/operations.md#metrics).
--
-- When a batch's ledger row was first written: a re-recorded batch (a dead-letter replay, a Kafka batch
-- re-run after a failed offset commit) moves processed_at, never this, so a counted batch is not read
-- again. Added without a default, then given one: both are catalogue changes, no rewrite of a large
-- ledger; rows from before stay null and are read as coalesce(recorded_at, processed_at) (their
-- processed_at is frozen into recorded_at the first time they are re-recorded, storage/writes.py).
ALTER TABLE ops.ingest_ledger ADD COLUMN IF NOT EXISTS recorded_at timestamptz;
ALTER TABLE ops.ingest_ledger ALTER COLUMN recorded_at SET DEFAULT now();
-- The exporter's recent rows (observability/ledger_metrics.py), by that same expression.
CREATE INDEX IF NOT EXISTS ingest_ledger_recorded ON ops.ingest_ledger ((coalesce(recorded_at, processed_at)));

-- The dead-letter backlog counts what a replay could still clear (quality/replayable.py): unresolved
-- duplicates and review rejections are kept for 730 days and would only ever grow it.
CREATE INDEX IF NOT EXISTS quarantine_replayable ON ops.quarantine (source)
    WHERE resolved_at IS NULL AND reasons !~ '(^|,)(duplicate_exact|duplicate_conflict|review_rejected:)';

