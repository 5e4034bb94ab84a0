-- Peak interval demand per meter and local day on the billing-grade series (VEE): kW = kWh * 60 /
-- interval minutes (import only), with the interval where it occurred (the earliest, on ties) and
-- its VEE status (a peak on an estimated interval is an estimate).
-- Incremental like the consumption facts (macros/incremental.sql, macros/rebuilt_days.sql).
{{ config(
    materialized='incremental',
    unique_key=['meter_id', 'local_date'],
    incremental_strategy='rebuilt_days',
    meta={'rebuilt_days': {'day': 'local_date', 'kept_days_of': 'meter_readings'}},
    on_schema_change='fail',
    indexes=[{'columns': ['local_date', 'meter_id']}, {'columns': ['meter_id', 'local_date']}],
) }}
-- depends_on: {{ ref('stg_ops__lifecycle_days') }}
with readings as (
    select
        *,
        -- to 6 decimals (macros/math.sql `rounded`): 1.1075 kWh in 15 minutes is 4.43 kW, not 4.429999999999999
        {{ rounded('import_kwh * 60.0 / interval_minutes') }} as demand_kw
    from {{ ref('int_meter_readings_localized') }}
    where {{ incremental_window('local_date', ref('int_meter_readings_localized'), 'local_date', 'processed_at_utc', cast_to='date') }}
),

ranked as (
    select
        *,
        row_number() over (partition by meter_id, local_date order by demand_kw desc, reading_start_utc) as rank_in_day,
        max(processed_at_utc) over (partition by meter_id, local_date) as last_processed_at_utc
    from readings
),

meters as (
    select meter_id, region, segment from {{ ref('stg_ops__meters') }}
)

select
    r.meter_id,
    r.local_date,
    m.region,
    m.segment,
    r.demand_kw as peak_demand_kw,
    r.reading_start_utc as peak_interval_start_utc,
    r.interval_minutes,
    r.status as peak_interval_status,
    r.last_processed_at_utc
from ranked as r
left join meters as m on r.meter_id = m.meter_id
where r.rank_in_day = 1
