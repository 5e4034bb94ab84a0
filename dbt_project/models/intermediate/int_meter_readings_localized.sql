-- One row per reading, placed on the meter's local calendar and on the UTC hour grid. Both the
-- hourly and the daily facts aggregate from here, so "daily = sum of hourly" is a real check.
with readings as (
    select * from {{ ref('stg_ops__meter_readings') }}
),

meters as (
    select meter_id, timezone from {{ ref('stg_ops__meters') }}
)

select
    r.meter_id,
    r.reading_start_utc,
    {{ dbt.date_trunc('hour', 'r.reading_start_utc') }} as hour_start_utc,
    {{ local_date('r.reading_start_utc', "coalesce(m.timezone, 'UTC')") }} as local_date,
    coalesce(m.timezone, 'UTC') as timezone,
    r.interval_minutes,
    r.direction,
    r.import_kwh,
    r.export_kwh,
    r.ingested_at_utc
from readings as r
left join meters as m on r.meter_id = m.meter_id
