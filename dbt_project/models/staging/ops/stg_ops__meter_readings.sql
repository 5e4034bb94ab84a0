-- Export readings may arrive with negative energy (message contract v1): the staging layer keeps
-- the sign-free magnitude so downstream sums never mix conventions.
select
    meter_id,
    {{ to_utc('reading_start') }} as reading_start_utc,
    interval_minutes,
    direction,
    abs(energy_kwh) as energy_kwh,
    case when direction = 'export' then 0.0 else abs(energy_kwh) end as import_kwh,
    case when direction = 'export' then abs(energy_kwh) else 0.0 end as export_kwh,
    register_kwh,
    voltage_v,
    power_factor,
    status_flags,
    source as reading_source,
    record_version,
    batch_id,
    {{ to_utc('ingested_at') }} as ingested_at_utc,
    quality_flags
from {{ source('ops', 'meter_readings') }}
