-- Migration 0011: the data API's ingestion requests (docs/api.md). One row per accepted POST: where its
-- message went (a landing file, or a Kafka topic, partition and offset), how many records it held
-- and who sent it. Its status comes from the ledger once the pipeline has processed it, and is kept
-- here once known (`accepted`, `quarantined`, `reasons`), so a poll costs one row read.
CREATE TABLE IF NOT EXISTS ops.api_batches (
    batch_id         text        PRIMARY KEY,
    source           text        NOT NULL,
    destination      text        NOT NULL CHECK (destination IN ('landing', 'kafka')),
    landing_batch_id text,                     -- the pipeline's batch id of the landing file
    kafka_topic      text,
    kafka_partition  integer,
    kafka_offset     bigint,
    records          integer     NOT NULL,
    subject          text        NOT NULL,     -- the token's subject
    client           text,                     -- the caller's address
    received_at      timestamptz NOT NULL DEFAULT now(),
    ledger_batch_id  text,                     -- set when processed
    accepted         integer,
    quarantined      integer,
    reasons          jsonb,                    -- reason code -> records
    processed_at     timestamptz,
    CHECK ((destination = 'landing') = (landing_batch_id IS NOT NULL)),
    CHECK ((destination = 'kafka') = (kafka_offset IS NOT NULL))
);

-- A Kafka request is matched to the ledger rows processed after it arrived.
CREATE INDEX IF NOT EXISTS ingest_ledger_processed_at ON ops.ingest_ledger (processed_at);
