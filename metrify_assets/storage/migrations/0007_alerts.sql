-- Migration 0007: one alert mechanism for grid states, data quality and pipeline failures.
-- An alert is a condition, not an event: while it stands, every new sighting refreshes the one open row
-- with its dedup key (last_seen_at, occurrences) instead of opening another. Acknowledging keeps it
-- open; resolving (by hand, or when the condition clears) closes it, and a later sighting opens a new one.
CREATE TABLE IF NOT EXISTS ops.alerts (
    alert_id      bigserial   PRIMARY KEY,
    kind          text        NOT NULL,          -- grid_state / quality / run_failure
    severity      text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    subject       text        NOT NULL,          -- what it is about: a grid node, a source, a job
    dedup_key     text        NOT NULL,          -- the condition: one open alert per key
    summary       text        NOT NULL,          -- one line a person reads
    details       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    opened_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    occurrences   integer     NOT NULL DEFAULT 1,
    acked_at      timestamptz,
    acked_by      text,
    ack_note      text,
    resolved_at   timestamptz,
    resolved_by   text,
    resolution    text,
    announced     boolean     NOT NULL DEFAULT false  -- its openings were queued for the channels
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open_per_condition ON ops.alerts (dedup_key)
    WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS alerts_by_opened ON ops.alerts (opened_at);
-- The newest sighting of a condition, open or resolved (grid/store.py: has an alert already seen it?).
CREATE INDEX IF NOT EXISTS alerts_by_condition ON ops.alerts (dedup_key, last_seen_at);
-- New alerts, open or already resolved, whose openings are still to be queued (delivery.py).
CREATE INDEX IF NOT EXISTS alerts_unannounced ON ops.alerts (alert_id) WHERE announced IS FALSE;

-- What each notification channel was told about each alert: one row per (alert, channel, event), and
-- per severity reached for `escalated` (a standing alert can escalate twice: info, warning, critical).
CREATE TABLE IF NOT EXISTS ops.alert_deliveries (
    alert_id          bigint      NOT NULL REFERENCES ops.alerts (alert_id) ON DELETE CASCADE,
    channel           text        NOT NULL,      -- webhook / slack / email (a configured channel's name)
    event             text        NOT NULL CHECK (event IN ('opened', 'escalated', 'resolved')),
    -- The severity the notification announces: for `escalated` the one reached; for `opened` the
    -- alert's when queued, then the one actually sent once delivered; for `resolved` the alert's when queued.
    severity          text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    status            text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          integer     NOT NULL DEFAULT 0,
    last_error        text,
    last_attempt_at   timestamptz,
    next_attempt_at   timestamptz,
    delivered_at      timestamptz,
    -- `opened` rows only (null on the others): false until the row's `resolved` row is queued.
    resolution_queued boolean     CHECK ((event = 'opened') = (resolution_queued IS NOT NULL)),
    PRIMARY KEY (alert_id, channel, event, severity)
);
-- One opening and one resolution per (alert, channel); escalations are told once per severity (the key).
CREATE UNIQUE INDEX IF NOT EXISTS alert_deliveries_one_opening_one_resolution
    ON ops.alert_deliveries (alert_id, channel, event) WHERE event <> 'escalated';
-- A tick's work is bounded by what is outstanding, not by history (docs/alerts.md "Work per tick"):
-- the due rows of a channel ...
CREATE INDEX IF NOT EXISTS alert_deliveries_due
    ON ops.alert_deliveries (channel, next_attempt_at) WHERE status = 'pending';
-- ... and the delivered openings whose resolution is still to be queued (about the standing alerts).
CREATE INDEX IF NOT EXISTS alert_deliveries_awaiting_resolution
    ON ops.alert_deliveries (alert_id) WHERE event = 'opened' AND status = 'delivered' AND resolution_queued IS FALSE;
