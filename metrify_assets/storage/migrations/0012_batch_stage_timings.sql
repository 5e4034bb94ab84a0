-- Migration 0012: how long each batch spent in each stage, for the metrics exporter's stage histogram
-- (observability/metrics.py). A JSON object of stage name -> seconds (observability/catalogue.py,
-- BATCH_STAGES); null for batches processed before this migration.
ALTER TABLE ops.ingest_ledger ADD COLUMN IF NOT EXISTS stage_seconds jsonb;

-- The exporter's scrape-time gauges read only what is current, through these (docs/operations.md#metrics):
-- a source's newest batch and its last hour of batches (last batch time, quality score) ...
CREATE INDEX IF NOT EXISTS ingest_ledger_source_processed_at ON ops.ingest_ledger (source, processed_at);
-- ... the newest local day a source stored records on (where its newest record is searched from) ...
CREATE INDEX IF NOT EXISTS ingest_days_source_day ON ops.ingest_days (source, day) WHERE records > 0;
-- ... and the review backlog (pending items; decided ones are most of the queue's history).
CREATE INDEX IF NOT EXISTS review_queue_pending ON ops.review_queue (source) WHERE status = 'pending';
