-- Migration 0027: which meters had readings on each archived day (docs/api.md#archived-days), so that
-- `/v1/meters/{id}/latest` says `archived` for a meter whose readings left PostgreSQL and `not_found`
-- for one that never sent any, on a platform with archived history. `ops.lifecycle_days` knows days
-- only; the lake copies hold the meters, but reading them would cost a request a lake read.
--
-- Kept by triggers, where the rows leave, so no writer has to remember it:
-- - a DELETE of readings on days with a lake copy (`ops.lifecycle_days`) records each (meter, local
--   day) it removed, with its transaction id (`xact`);
-- - recording a day's hot deletion (`hot_deleted_at`) stamps the day with its transaction id
--   (`hot_deleted_xact`). The lifecycle deletes a day's rows and records it in one transaction
--   (lifecycle/retention.py `delete_hot_day`), so a meter's rows of a day are in the lake copy when
--   its `xact` is the day's `hot_deleted_xact`; a rollback or a rejection that deleted its rows
--   before (another transaction) does not count. Late rows merged and deleted later move the day's
--   earlier meters on to the new transaction, as the merged copy still holds their rows.
-- A meter-day is archived while the day is (`hot_deleted_at` set, not restored since). Days whose
-- hot rows left before this migration have no `hot_deleted_xact`: their meters are not known (the
-- API says so).
CREATE TABLE IF NOT EXISTS ops.archived_meter_days (
    meter_id  text   NOT NULL,
    day       date   NOT NULL,   -- the meter's local day, as the lifecycle's day of readings
    xact      bigint NOT NULL,   -- txid_current() of the transaction that deleted the rows
    PRIMARY KEY (meter_id, day)
);
CREATE INDEX IF NOT EXISTS archived_meter_days_day ON ops.archived_meter_days (day);

ALTER TABLE ops.lifecycle_days ADD COLUMN IF NOT EXISTS hot_deleted_xact bigint;

CREATE OR REPLACE FUNCTION ops.note_archived_meter_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ops.archived_meter_days (meter_id, day, xact)
    SELECT DISTINCT g.meter_id, g.day, txid_current()
    FROM (
        SELECT o.meter_id, (o.reading_start AT TIME ZONE coalesce(m.timezone, 'UTC'))::date AS day
        FROM gone o LEFT JOIN ops.meters m USING (meter_id)
    ) g
    JOIN ops.lifecycle_days l ON l.dataset = 'meter_readings' AND l.day = g.day
    ON CONFLICT (meter_id, day) DO UPDATE SET xact = EXCLUDED.xact;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS meter_readings_archived_meter_days ON ops.meter_readings;
CREATE TRIGGER meter_readings_archived_meter_days
    AFTER DELETE ON ops.meter_readings REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION ops.note_archived_meter_days();

CREATE OR REPLACE FUNCTION ops.note_hot_deleted_xact() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.hot_deleted_at IS NULL THEN
        NEW.hot_deleted_xact := NULL;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.hot_deleted_at IS NOT DISTINCT FROM OLD.hot_deleted_at THEN
        RETURN NEW;
    END IF;
    NEW.hot_deleted_xact := txid_current();
    -- Deleted again without a restore in between (late rows merged into the copy): the meters whose
    -- rows left before are still in the copy.
    IF TG_OP = 'UPDATE' AND NEW.dataset = 'meter_readings' AND OLD.hot_deleted_xact IS NOT NULL
        AND (OLD.restored_at IS NULL OR OLD.restored_at < OLD.hot_deleted_at) THEN
        UPDATE ops.archived_meter_days SET xact = NEW.hot_deleted_xact
        WHERE day = NEW.day AND xact = OLD.hot_deleted_xact;
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS lifecycle_days_hot_deleted_xact ON ops.lifecycle_days;
CREATE TRIGGER lifecycle_days_hot_deleted_xact
    BEFORE INSERT OR UPDATE OF hot_deleted_at ON ops.lifecycle_days
    FOR EACH ROW EXECUTE FUNCTION ops.note_hot_deleted_xact();

-- A day's copy expired (its row deleted): its meters are in no tier any more.
CREATE OR REPLACE FUNCTION ops.forget_archived_meter_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.dataset = 'meter_readings' THEN
        DELETE FROM ops.archived_meter_days WHERE day = OLD.day;
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS lifecycle_days_forget_meter_days ON ops.lifecycle_days;
CREATE TRIGGER lifecycle_days_forget_meter_days
    AFTER DELETE ON ops.lifecycle_days
    FOR EACH ROW EXECUTE FUNCTION ops.forget_archived_meter_days();
