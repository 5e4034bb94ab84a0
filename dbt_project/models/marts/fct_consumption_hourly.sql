-- Billing-grade energy (VEE) per meter and UTC hour, with the meter's local date and its time-of-use
-- period. Incremental (macros/incremental.sql): history survives archiving of the `ops` tables; an
-- hour with no interval left upstream leaves the days a run rebuilds (macros/rebuilt_days.sql).
{{ config(
    materialized='incremental',
    unique_key=['meter_id', 'hour_start_utc'],
    incremental_strategy='rebuilt_days',
    meta={'rebuilt_days': {'day': 'local_date', 'utc_hour': 'hour_start_utc', 'period': 'hour_start_utc', 'kept_days_of': 'meter_readings'}},
    on_schema_change='fail',
    indexes=[{'columns': ['hour_start_utc', 'meter_id']}, {'columns': ['meter_id', 'hour_start_utc']}],
) }}
-- depends_on: {{ ref('stg_ops__lifecycle_days') }}
with hourly as (
    select * from {{ ref('int_meter_readings_hourly') }}
    where {{ incremental_window('hour_start_utc', ref('int_meter_readings_hourly'), 'hour_start_utc', 'last_processed_at_utc', utc_column='hour_start_utc') }}
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
    {{ exact_difference('h.kwh_import', 'h.kwh_export') }} as net_kwh,
    h.kwh_estimated,
    h.interval_count,
    -- a sum of integers: bigint on PostgreSQL and Snowflake, a double on fakesnow
    cast(h.estimated_intervals as {{ dbt.type_bigint() }}) as estimated_intervals,
    m.region,
    m.segment,
    h.tou_period,
    h.last_processed_at_utc
from hourly as h
left join meters as m on h.meter_id = m.meter_id
