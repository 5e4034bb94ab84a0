-- Migration 0030: a timestamp without an offset is not a dead letter a replay could accept
-- (quality/replayable.py, docs/reliability.md#dead-letters). A replay runs the same payload through
-- the same decoder, so only ingesting the file again with --timezone fixes it; the backlog the
-- metrify_dlq_records gauge and `metrify status` count leaves such records out, as it does duplicates
-- and review rejections. The partial index is rebuilt with the predicate the count now uses.
DROP INDEX IF EXISTS ops.quarantine_replayable;
CREATE INDEX IF NOT EXISTS quarantine_replayable ON ops.quarantine (source)
    WHERE resolved_at IS NULL
        AND reasons !~ '(^|,)(duplicate_exact|duplicate_conflict|review_rejected:|malformed:timestamp_without_offset)';
