select
    station_id,
    {{ to_utc('observed_at') }} as observed_at_utc,
    temperature_c,
    humidity_pct,
    pressure_hpa,
    wind_speed_ms,
    precipitation_mm,
    record_version,
    batch_id,
    {{ to_utc('ingested_at') }} as ingested_at_utc,
    quality_flags
from {{ source('ops', 'weather_observations') }}
