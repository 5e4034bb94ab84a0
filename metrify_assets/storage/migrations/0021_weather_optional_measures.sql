-- Migration 0021: weather stations that miss a measure.
-- Humidity, pressure, wind speed and precipitation became optional in the weather contract (v1,
-- compatible): an observation without one (a broken hygrometer, no rain gauge) is stored with that
-- measure null instead of being quarantined as malformed. Temperature stays required (degree-days and
-- the weather impact are built on it), and so NOT NULL.
ALTER TABLE ops.weather_observations
    ALTER COLUMN humidity_pct DROP NOT NULL,
    ALTER COLUMN pressure_hpa DROP NOT NULL,
    ALTER COLUMN wind_speed_ms DROP NOT NULL,
    ALTER COLUMN precipitation_mm DROP NOT NULL;
