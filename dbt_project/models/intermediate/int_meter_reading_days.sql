-- The raw readings (ops.meter_readings, every reading that arrived, VEE or not) per meter and local
-- day: the first and last interval start and how many readings the day holds. dim_meter's reading
-- span adds these up, so it keeps the readings the data lifecycle has deleted from `ops`.
-- An incremental table, unlike the other intermediate models (macros/incremental.sql): it keeps the
-- days archived out of `ops` (the lifecycle deletes readings by the meter's local day, this table's
-- day) and rebuilds the days that took readings after its watermark (`last_ingested_at_utc`; an
-- upsert of a newer version stamps `ingested_at` anew) and the trailing lookback days; a partitioned
-- run rebuilds exactly its local days, and a meter-day whose readings all went (a withdrawal, a
-- rollback) leaves them (macros/rebuilt_days.sql). Its first build reads every reading `ops` holds, partitioned
-- run or not, so dim_meter's figures are whole from the start (no backfill after an upgrade).
{{ config(
    materialized='incremental',
    unique_key=['meter_id', 'local_date'],
    incremental_strategy='rebuilt_days',
    meta={'rebuilt_days': {'day': 'local_date', 'kept_days_of': 'meter_readings'}},
    on_schema_change='fail',
    indexes=[{'columns': ['local_date', 'meter_id']}],
    post_hook="{{ metrify.ensure_indexes() }}",
) }}
-- depends_on: {{ ref('stg_ops__lifecycle_days') }}
{%- set localized -%}
    (select
        r.meter_id,
        r.reading_start_utc,
        r.ingested_at_utc,
        {{ local_date('r.reading_start_utc', "coalesce(m.timezone, 'UTC')") }} as local_date
     from {{ ref('stg_ops__meter_readings') }} as r
     left join {{ ref('stg_ops__meters') }} as m on r.meter_id = m.meter_id)
{%- endset %}
with readings as (
    select * from {{ localized }} as r
    {%- if is_incremental() %}
    where {{ incremental_window('local_date', localized, 'local_date', 'ingested_at_utc', cast_to='date', utc_column='reading_start_utc', watermark_column='last_ingested_at_utc') }}
    {%- endif %}
)

select
    meter_id,
    local_date,
    min(reading_start_utc) as first_reading_utc,
    max(reading_start_utc) as last_reading_utc,
    count(*) as reading_count,
    max(ingested_at_utc) as last_ingested_at_utc
from readings
group by meter_id, local_date
