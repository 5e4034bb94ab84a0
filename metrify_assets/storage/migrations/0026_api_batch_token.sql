-- Migration 0026: which API token posted each data-API request (docs/api.md#sending-data).
--
-- ops.api_batches.token_id: the `jti` claim of the bearer token the POST carried, as the audit log
-- records it for the request's `ingest.post` entry (migration 0023), so the batches of a leaked or
-- withdrawn token can be found (`metrify audit --token-id` lists its calls) and each batch's status
-- shows it. NULL for a token without a `jti`.
ALTER TABLE ops.api_batches ADD COLUMN IF NOT EXISTS token_id text;
CREATE INDEX IF NOT EXISTS api_batches_token_id ON ops.api_batches (token_id, received_at)
    WHERE token_id IS NOT NULL;

-- Backfill from the audit log where it knows: a request's row and its `ingest.post` entry were written
-- in one transaction, the entry targeting `api_batch:<batch_id>`. Requests before migration 0023 stay
-- NULL: unknown, not guessed.
UPDATE ops.api_batches b
SET token_id = a.token_id
FROM ops.audit_log a
WHERE b.token_id IS NULL
  AND a.target = 'api_batch:' || b.batch_id
  AND a.action = 'ingest.post'
  AND a.token_id IS NOT NULL;
