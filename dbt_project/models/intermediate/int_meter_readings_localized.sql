-- One row per interval of the billing-grade series: the VEE intervals with a billing value (actual,
-- estimated, edited), on the meter's local calendar and on the UTC hour grid. Both the hourly and the
-- daily facts aggregate from here, so "daily = sum of hourly" is a real check. Missing and failed
-- intervals carry no energy; the daily fact counts them from VEE's day summary (stg_ops__vee_days).
-- `energy_estimated` is the one definition of estimated energy both facts use, VEE's day summary's
-- (meters/vee/gate.py): an interval's energy is as read when its method is `actual` or
-- `review_approved` (a reviewer kept the reading), and estimated otherwise (estimated by VEE, or
-- edited to another value after a reviewer's rejection).
-- `local_date` is VEE's (the meter's local day, UTC when unregistered): a partitioned run selects
-- its days on it, which migration 0004 indexes.
with intervals as (
    select * from {{ ref('stg_ops__vee_readings') }}
    where status in ('actual', 'estimated', 'edited')
),

meters as (
    select meter_id, timezone from {{ ref('stg_ops__meters') }}
)

select
    r.meter_id,
    r.reading_start_utc,
    {{ dbt.date_trunc('hour', 'r.reading_start_utc') }} as hour_start_utc,
    r.local_date,
    coalesce(m.timezone, 'UTC') as timezone,
    r.interval_minutes,
    r.direction,
    r.status,
    case when r.method in ('actual', 'review_approved') then false else true end as energy_estimated,
    r.import_kwh,
    r.export_kwh,
    r.processed_at_utc
from intervals as r
left join meters as m on r.meter_id = m.meter_id
