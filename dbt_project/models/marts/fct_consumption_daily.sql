-- Billing-grade energy (VEE) per meter and local day: import, export and net from the intervals with
-- a billing value, the actual/estimated split of the net energy (the intervals' `energy_estimated`,
-- as the hourly fact splits it), the interval counts by status from VEE's day summary, the billing gate, and completeness against the intervals the day should hold (a local day
-- has 23 or 25 hours when daylight saving changes). A meter-day VEE processed without any billing
-- value (everything missing) is a row too, with zero energy and billing_ready false.
-- Incremental (macros/incremental.sql): history survives archiving of the `ops` tables. The
-- intervals and the day summaries are windowed alike, on the days either of them changed. A meter-day
-- with neither any more (a withdrawal) leaves the days a run rebuilds (macros/rebuilt_days.sql).
{{ config(
    materialized='incremental',
    unique_key=['meter_id', 'local_date'],
    incremental_strategy='rebuilt_days',
    meta={'rebuilt_days': {'day': 'local_date', 'kept_days_of': 'meter_readings'}},
    on_schema_change='fail',
    indexes=[{'columns': ['local_date', 'meter_id']}, {'columns': ['meter_id', 'local_date']}],
) }}
-- depends_on: {{ ref('stg_ops__lifecycle_days') }}
{%- set changes -%}
    (select local_date, processed_at_utc from {{ ref('int_meter_readings_localized') }}
     union all
     select local_date, processed_at_utc from {{ ref('stg_ops__vee_days') }})
{%- endset %}
with readings as (
    select * from {{ ref('int_meter_readings_localized') }}
    where {{ incremental_window('local_date', changes, 'local_date', 'processed_at_utc', cast_to='date') }}
),

vee_days as (
    select * from {{ ref('stg_ops__vee_days') }}
    where {{ incremental_window('local_date', changes, 'local_date', 'processed_at_utc', cast_to='date') }}
),

meters as (
    select meter_id, region, segment from {{ ref('stg_ops__meters') }}
),

daily as (
    select
        meter_id,
        local_date,
        timezone,
        {{ exact_sum('import_kwh') }} as kwh_import,
        {{ exact_sum('export_kwh') }} as kwh_export,
        {{ exact_sum("case when energy_estimated then 0.0 else import_kwh - export_kwh end") }} as kwh_actual,
        {{ exact_sum("case when energy_estimated then import_kwh - export_kwh else 0.0 end") }} as kwh_estimated,
        count(*) as interval_count,
        sum(interval_minutes) as covered_minutes,
        max(interval_minutes) as interval_minutes,
        max(processed_at_utc) as last_processed_at_utc
    from readings
    group by meter_id, local_date, timezone
),

meter_days as (
    select
        coalesce(d.meter_id, v.meter_id) as meter_id,
        coalesce(d.local_date, v.local_date) as local_date,
        coalesce(d.timezone, v.timezone) as timezone,
        coalesce(d.kwh_import, 0.0) as kwh_import,
        coalesce(d.kwh_export, 0.0) as kwh_export,
        coalesce(d.kwh_actual, 0.0) as kwh_actual,
        coalesce(d.kwh_estimated, 0.0) as kwh_estimated,
        coalesce(d.interval_count, 0) as interval_count,
        coalesce(d.covered_minutes, 0) as covered_minutes,
        coalesce(v.interval_minutes, d.interval_minutes) as interval_minutes,
        v.expected_intervals as vee_expected_intervals,
        v.actual_intervals,
        v.estimated_intervals,
        v.edited_intervals,
        v.missing_intervals,
        v.failed_intervals,
        coalesce(v.billing_ready, false) as billing_ready,
        v.gate_failures,
        case
            when d.last_processed_at_utc is null then v.processed_at_utc
            when v.processed_at_utc > d.last_processed_at_utc then v.processed_at_utc
            else d.last_processed_at_utc
        end as last_processed_at_utc
    from daily as d
    full outer join vee_days as v on d.meter_id = v.meter_id and d.local_date = v.local_date
),

with_day_length as (
    select
        d.*,
        {{ local_day_minutes('d.local_date', 'd.timezone') }} as day_minutes
    from meter_days as d
)

select
    d.meter_id,
    d.local_date,
    m.region,
    m.segment,
    d.kwh_import,
    d.kwh_export,
    {{ exact_difference('d.kwh_import', 'd.kwh_export') }} as net_kwh,
    d.kwh_actual,
    d.kwh_estimated,
    d.interval_count,
    d.interval_minutes,
    -- VEE's count where it has one (a meter's first day from its first reading's interval; a day
    -- before the meter's install date holds only what arrived).
    coalesce(d.vee_expected_intervals, cast(d.day_minutes / d.interval_minutes as integer)) as expected_intervals,
    d.actual_intervals,
    d.estimated_intervals,
    d.edited_intervals,
    d.missing_intervals,
    d.failed_intervals,
    -- Against the minutes VEE expected (from the first reading's interval on a meter's first day).
    {{ safe_divide('d.covered_minutes', 'coalesce(d.vee_expected_intervals * d.interval_minutes, d.day_minutes)') }} as completeness,
    d.billing_ready,
    d.gate_failures,
    d.last_processed_at_utc
from with_day_length as d
left join meters as m on d.meter_id = m.meter_id
