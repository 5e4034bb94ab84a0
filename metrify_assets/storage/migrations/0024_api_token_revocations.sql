-- Migration 0024: revoked API tokens (docs/api.md#revoking-a-token). One row per revoked token, keyed
-- by its id (the `jti` claim, the audit log's `token_id`), with who revoked it (`revoked_by`: the
-- `--by` named; `account`: the OS user that ran `metrify api revoke`), when and why. The API refuses
-- a token whose id is here with 401 `token_revoked`. A revocation is final: rows are never updated
-- or deleted by Metrify (a token id is random and used once, so a row outliving its token's expiry
-- costs a few bytes and keeps the record).
CREATE TABLE IF NOT EXISTS ops.api_token_revocations (
    token_id   text PRIMARY KEY CHECK (token_id <> ''),
    revoked_at timestamptz NOT NULL DEFAULT now(),
    revoked_by text NOT NULL,
    account    text,
    reason     text NOT NULL
);
