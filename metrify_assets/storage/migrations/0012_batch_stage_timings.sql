-- Migration 0012: how long each batch spent in each stage, for the metrics exporter's stage histogram
-- (observability/metrics.py). A JSON object of stage name -> seconds (observability/catalogue.py,
-- BATCH_STAGES); null for batches processed before this migration.
ALTER TABLE ops.ingest_ledger ADD COLUMN IF NOT EXISTS stage_seconds jsonb;
