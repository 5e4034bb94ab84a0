-- Migration 0002: what makes downstream runs proportional to their new data.

-- The local days each batch touched (meters: the meter's timezone, UTC when unregistered; grid and
-- weather: the UTC day). `late_days_sensor` reads it by `seq` to re-materialise late days.
CREATE TABLE ops.ingest_days (
    batch_id     text        NOT NULL,
    source       text        NOT NULL,
    day          date        NOT NULL,
    records      integer     NOT NULL,
    seq          bigint      GENERATED ALWAYS AS IDENTITY,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, day)
);
CREATE INDEX ingest_days_seq ON ops.ingest_days (seq);

-- Day-window reads (enrichment, scoring, archive, report) by time, not by meter: BRIN indexes are a
-- few pages and nearly free to maintain on append-mostly tables, where a B-tree would slow the upsert.
CREATE INDEX meter_readings_reading_start_brin ON ops.meter_readings USING brin (reading_start);
CREATE INDEX grid_status_measured_at_brin ON ops.grid_status USING brin (measured_at);
CREATE INDEX weather_observations_observed_at_brin ON ops.weather_observations USING brin (observed_at);
CREATE INDEX enriched_meter_readings_local_date ON ops.enriched_meter_readings (local_date);
CREATE INDEX anomaly_scores_reading_start_brin ON ops.anomaly_scores USING brin (reading_start);
-- dbt's staging views expose naive UTC timestamps (`reading_start AT TIME ZONE 'UTC'`): the same
-- expressions indexed let a partitioned dbt run and its tests read their days only.
CREATE INDEX meter_readings_reading_start_utc_brin ON ops.meter_readings USING brin ((reading_start AT TIME ZONE 'UTC'));
CREATE INDEX grid_status_measured_at_utc_brin ON ops.grid_status USING brin ((measured_at AT TIME ZONE 'UTC'));
CREATE INDEX weather_observations_observed_at_utc_brin ON ops.weather_observations USING brin ((observed_at AT TIME ZONE 'UTC'));
CREATE INDEX enriched_meter_readings_reading_start_utc_brin ON ops.enriched_meter_readings USING brin ((reading_start AT TIME ZONE 'UTC'));
CREATE INDEX anomaly_scores_reading_start_utc_brin ON ops.anomaly_scores USING brin ((reading_start AT TIME ZONE 'UTC'));
CREATE INDEX quarantine_batch ON ops.quarantine (batch_id);

-- Meters without a registry row are enriched as segment/region `unknown` and flagged.
ALTER TABLE ops.enriched_meter_readings ADD COLUMN quality_flags text;
