-- The billing-grade interval series that VEE writes (every interval of every meter-day it processed).
-- `energy_kwh` is signed like the message contract (negative only for export): staging keeps the
-- magnitudes, as for the raw readings, and splits them into import and export. Intervals without a
-- billing value (status missing or failed) keep null energy.
select
    meter_id,
    {{ to_utc('reading_start') }} as reading_start_utc,
    local_date,
    interval_minutes,
    direction,
    status,
    abs(energy_kwh) as energy_kwh,
    case when energy_kwh is null then null when direction = 'export' then 0.0 else abs(energy_kwh) end as import_kwh,
    case when energy_kwh is null then null when direction = 'export' then abs(energy_kwh) else 0.0 end as export_kwh,
    abs(original_kwh) as original_kwh,
    method,
    reasons,
    rule_version,
    batch_id,
    edited_by,
    {{ to_utc('processed_at') }} as processed_at_utc
from {{ source('ops', 'vee_readings') }}
