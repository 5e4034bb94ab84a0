-- Migration 0025: every Kafka message of a data-API request (docs/api.md#sending-data). A request of
-- several meters (grid nodes, stations) is sent as one message per owner, keyed by it, so each owner's
-- record versions are offsets of one partition; `kafka_messages` lists them as [partition, offset,
-- records] in sending order (the `kafka_*` columns keep the first). NULL on rows written before this
-- migration, which held one message.
ALTER TABLE ops.api_batches ADD COLUMN IF NOT EXISTS kafka_messages jsonb;
