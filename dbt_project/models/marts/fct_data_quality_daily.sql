-- Data quality per processing day (UTC) and source: the ledger's reconciliation counts, what the
-- quarantine holds, and the share of meter readings the anomaly model flagged that day.
-- Incremental by processing day (macros/incremental.sql, processing_days_window): a run rebuilds the
-- newest days whole (delete+insert on the day, every source) and keeps the older ones, so a day's
-- figures survive the lifecycle's deletion of its ledger, quarantine and score rows from `ops`.
{{ config(
    materialized='incremental',
    unique_key=['activity_date'],
    incremental_strategy='rebuilt_days',
    meta={'rebuilt_days': {'processing_day': 'activity_date'}},
    on_schema_change='fail',
    indexes=[{'columns': ['activity_date', 'source']}],
) }}
with ledger as (
    select
        cast(processed_at_utc as date) as activity_date,
        source,
        count(*) as batch_count,
        -- A sum of integers is a bigint on PostgreSQL and Snowflake, a double on fakesnow (it casts
        -- sum's argument to double): the contract's bigint on every engine.
        cast(sum(records_in) as {{ dbt.type_bigint() }}) as records_in,
        cast(sum(accepted) as {{ dbt.type_bigint() }}) as accepted,
        cast(sum(flagged) as {{ dbt.type_bigint() }}) as flagged,
        cast(sum(quarantined) as {{ dbt.type_bigint() }}) as quarantined,
        -- Each batch's score weighted by its records: a one-record late correction must not pull a
        -- day of thousands of records below the alert threshold, as a plain mean of batches did.
        -- Unscored batches are left out; a day whose scored batches hold no record keeps their mean.
        coalesce(
            {{ safe_divide(
                'sum(quality_score * records_in)',
                'sum(case when quality_score is not null then records_in end)'
            ) }},
            cast(avg(quality_score) as {{ dbt.type_float() }})
        ) as avg_quality_score
    from {{ ref('stg_ops__ingest_ledger') }}
    where {{ processing_days_window('cast(processed_at_utc as date)') }}
    group by cast(processed_at_utc as date), source
),

quarantine as (
    select
        cast(quarantined_at_utc as date) as activity_date,
        source,
        count(*) as quarantine_records
    from {{ ref('stg_ops__quarantine') }}
    where {{ processing_days_window('cast(quarantined_at_utc as date)') }}
    group by cast(quarantined_at_utc as date), source
),

reasons as (
    select
        activity_date,
        source,
        count(*) as distinct_reasons,
        -- PostgreSQL's sum of a bigint is numeric (fakesnow's a double): the contract's bigint.
        cast(sum(record_count) as {{ dbt.type_bigint() }}) as reason_occurrences
    from {{ ref('fct_quarantine_reasons_daily') }}
    where {{ processing_days_window('activity_date') }}
    group by activity_date, source
),

anomalies as (
    select
        cast(scored_at_utc as date) as activity_date,
        'meter_readings' as source,
        count(*) as scored_readings,
        -- avg of a numeric literal: numeric on PostgreSQL, a fixed-point or double on Snowflake.
        cast(avg({{ indicator('is_anomaly') }}) as {{ dbt.type_float() }}) as anomaly_rate
    from {{ ref('stg_ops__anomaly_scores') }}
    where {{ processing_days_window('cast(scored_at_utc as date)') }}
    group by cast(scored_at_utc as date)
),

keys as (
    select activity_date, source from ledger
    union
    select activity_date, source from quarantine
    union
    select activity_date, source from anomalies
)

select
    k.activity_date,
    k.source,
    coalesce(l.batch_count, 0) as batch_count,
    coalesce(l.records_in, 0) as records_in,
    coalesce(l.accepted, 0) as accepted,
    coalesce(l.flagged, 0) as flagged,
    coalesce(l.quarantined, 0) as quarantined,
    {{ safe_divide('l.accepted', 'l.records_in') }} as acceptance_rate,
    l.avg_quality_score,
    coalesce(q.quarantine_records, 0) as quarantine_records,
    coalesce(r.distinct_reasons, 0) as distinct_quarantine_reasons,
    coalesce(r.reason_occurrences, 0) as quarantine_reason_occurrences,
    coalesce(a.scored_readings, 0) as scored_readings,
    a.anomaly_rate
from keys as k
left join ledger as l on k.activity_date = l.activity_date and k.source = l.source
left join quarantine as q on k.activity_date = q.activity_date and k.source = q.source
left join reasons as r on k.activity_date = r.activity_date and k.source = r.source
left join anomalies as a on k.activity_date = a.activity_date and k.source = a.source
