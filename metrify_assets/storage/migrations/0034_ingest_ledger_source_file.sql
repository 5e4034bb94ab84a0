-- Migration 0034: the file a landing batch was read from, as `metrify ingest` was given it
-- (`source_file`: the path typed, e.g. `exports/vendor.csv`), and where each of its records was in it
-- (`source_lines`: runs `[text, first number, records]`, e.g. `[["line ", 2, 4999]]`, record i being the
-- i-th place), from the origin file written beside the landing file (ingestion/provenance.py).
-- `metrify dlq list | show` name a quarantined record by its file and line, `metrify status` the newest
-- batch's file. Kafka ranges, API requests, simulated files and batches ingested before this
-- migration have neither (NULL).
ALTER TABLE ops.ingest_ledger ADD COLUMN IF NOT EXISTS source_file text;
ALTER TABLE ops.ingest_ledger ADD COLUMN IF NOT EXISTS source_lines jsonb;
