-- How often each reason code sent records to quarantine, per day and source.
-- Incremental by processing day (macros/incremental.sql, processing_days_window): a run rebuilds the
-- newest days whole (delete+insert on the day) and keeps the older ones, so the counts survive the
-- lifecycle's deletion of old quarantine rows from `ops`.
{{ config(
    materialized='incremental',
    unique_key=['activity_date'],
    incremental_strategy='rebuilt_days',
    meta={'rebuilt_days': {'processing_day': 'activity_date'}},
    on_schema_change='fail',
) }}
select
    quarantined_date as activity_date,
    source,
    reason,
    count(*) as record_count
from {{ ref('int_quarantine_reasons') }}
where {{ processing_days_window('quarantined_date') }}
group by quarantined_date, source, reason
