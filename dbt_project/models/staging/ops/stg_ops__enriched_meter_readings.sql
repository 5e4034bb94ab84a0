select
    meter_id,
    {{ to_utc('reading_start') }} as reading_start_utc,
    interval_minutes,
    abs(energy_kwh) as energy_kwh,
    direction,
    segment,
    region,
    tariff,
    tou_period,
    local_date,
    local_hour,
    temperature_c,
    anomaly_score,
    is_anomaly
from {{ source('ops', 'enriched_meter_readings') }}
