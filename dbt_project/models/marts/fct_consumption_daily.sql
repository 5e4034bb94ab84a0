-- Energy per meter and local day, with completeness against the intervals the day should hold
-- (a local day has 23 or 25 hours when daylight saving changes).
-- Incremental (macros/incremental.sql): history survives archiving of ops.meter_readings.
{{ config(
    materialized='incremental',
    unique_key=['meter_id', 'local_date'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
) }}
with readings as (
    select * from {{ ref('int_meter_readings_localized') }}
    where {{ incremental_window('local_date', ref('int_meter_readings_localized'), 'local_date', 'ingested_at_utc', cast_to='date', utc_column='reading_start_utc') }}
),

meters as (
    select meter_id, region, segment from {{ ref('stg_ops__meters') }}
),

daily as (
    select
        meter_id,
        local_date,
        timezone,
        sum(import_kwh) as kwh_import,
        sum(export_kwh) as kwh_export,
        count(*) as interval_count,
        sum(interval_minutes) as covered_minutes,
        max(interval_minutes) as interval_minutes,
        max(ingested_at_utc) as last_ingested_at_utc
    from readings
    group by meter_id, local_date, timezone
),

with_day_length as (
    select
        d.*,
        {{ local_day_minutes('d.local_date', 'd.timezone') }} as day_minutes
    from daily as d
)

select
    d.meter_id,
    d.local_date,
    m.region,
    m.segment,
    d.kwh_import,
    d.kwh_export,
    d.kwh_import - d.kwh_export as net_kwh,
    d.interval_count,
    d.interval_minutes,
    cast(d.day_minutes / d.interval_minutes as integer) as expected_intervals,
    {{ safe_divide('d.covered_minutes', 'd.day_minutes') }} as completeness,
    d.last_ingested_at_utc
from with_day_length as d
left join meters as m on d.meter_id = m.meter_id
