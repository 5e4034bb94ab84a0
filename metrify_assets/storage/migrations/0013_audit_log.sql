-- Migration 0013: the audit log (docs/operations.md#audit-log). One row per human or API action that
-- changes data or its fate (review decisions, VEE edits, legal holds, alert acknowledgements and
-- resolutions, API ingestion, dead-letter replays, restores, rollbacks, lifecycle runs started by a
-- person), written in the same transaction as the change (observability/audit.py).
CREATE TABLE IF NOT EXISTS ops.audit_log (
    id       bigserial   PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text        NOT NULL CHECK (length(trim(actor)) > 0),  -- OS user or --by; the token's subject
    action   text        NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)+$'),  -- e.g. review.approve
    target   text        NOT NULL,                   -- kind:id, e.g. hold:12, alert:7, meter_readings:2026-03-01
    details  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    channel  text        NOT NULL CHECK (channel IN ('cli', 'api', 'dagster')),
    origin   text,                                   -- the CLI's host name; the API client's address
    affected bigint                                  -- rows (or objects) the action changed
);
CREATE INDEX IF NOT EXISTS audit_log_at ON ops.audit_log (at);
CREATE INDEX IF NOT EXISTS audit_log_actor ON ops.audit_log (actor, at);
CREATE INDEX IF NOT EXISTS audit_log_action ON ops.audit_log (action, at);
CREATE INDEX IF NOT EXISTS audit_log_target ON ops.audit_log (target, at);

-- Append-only, enforced by the database: no code path (the application's included) rewrites history.
-- Statement-level, so even an UPDATE or DELETE that matches no row is refused.
CREATE OR REPLACE FUNCTION ops.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ops.audit_log is append-only: % is not allowed', TG_OP
        USING HINT = 'audit entries are only ever inserted (docs/operations.md#audit-log)';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ops.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION ops.audit_log_append_only();
