-- Migration 0022: the account an audit entry was made under (docs/operations.md#audit-log), beside its
-- actor. `actor` is who the entry names as acting (a review decision's --by, as typed); `account` is who
-- was authenticated when it was made: the operating-system user that ran the CLI, the API token's
-- subject. NULL for entries written before this migration (the log is append-only: they stay as they are).
ALTER TABLE ops.audit_log ADD COLUMN IF NOT EXISTS account text;
CREATE INDEX IF NOT EXISTS audit_log_account ON ops.audit_log (account, at);
