-- Energy per meter and UTC hour, with the meter's local date and its time-of-use period.
with hourly as (
    select * from {{ ref('int_meter_readings_hourly') }}
),

meters as (
    select meter_id, region, segment from {{ ref('stg_ops__meters') }}
)

select
    h.meter_id,
    h.hour_start_utc,
    h.local_date,
    h.local_hour,
    h.kwh_import,
    h.kwh_export,
    h.kwh_import - h.kwh_export as net_kwh,
    h.interval_count,
    m.region,
    m.segment,
    h.tou_period
from hourly as h
left join meters as m on h.meter_id = m.meter_id
