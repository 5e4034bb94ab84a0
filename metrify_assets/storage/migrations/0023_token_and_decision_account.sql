-- Migration 0023: which API token made an audit entry, and who was authenticated for a review decision
-- (docs/operations.md#audit-log, docs/quality.md#review-of-flagged-records).
--
-- ops.audit_log.token_id: the `jti` claim of the bearer token an API call carried, so the calls of a
-- token that leaked or was withdrawn can be listed (`metrify audit --token-id`). NULL for CLI entries,
-- for a token without a `jti`, and for entries written before this migration (the log is append-only:
-- they stay as they are).
ALTER TABLE ops.audit_log ADD COLUMN IF NOT EXISTS token_id text;
CREATE INDEX IF NOT EXISTS audit_log_token_id ON ops.audit_log (token_id, at) WHERE token_id IS NOT NULL;

-- ops.review_queue.decided_account: the account that was authenticated when the item's decision was
-- made (the OS user that ran `metrify review`, the API token's subject), beside `decided_by`, the
-- reviewer as named (`--by`, typed; the token's subject). NULL while pending, and where unknown.
ALTER TABLE ops.review_queue ADD COLUMN IF NOT EXISTS decided_account text;

-- Backfill from the audit log where it knows: a decision and its audit entry were written in one
-- transaction (the same now(), the same reviewer), and entries carry the account since migration
-- 0022. Decisions made before that, or without an entry, stay NULL: unknown, not guessed.
UPDATE ops.review_queue q
SET decided_account = a.account
FROM ops.audit_log a
WHERE q.decided_at IS NOT NULL
  AND q.decided_account IS NULL
  AND a.target = 'review:' || q.batch_id || '#' || q.record_index
  AND a.at = q.decided_at
  AND a.actor = q.decided_by
  AND a.action IN ('review.approve', 'review.reject')
  AND a.account IS NOT NULL;
