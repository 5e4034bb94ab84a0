{#- The forecast days a run of the forecast marts (re)builds, as a condition on `date_column`. A
    partitioned run (day D, `partition_days`) rebuilds D, whose actuals the D partition of
    load_forecast wrote, and D + 1, whose forecasts it wrote. Otherwise every day whose forecasts or
    actuals changed after the mart's `last_changed_at_utc`, and at least the lookback days
    (macros/incremental.sql); `true` on a full build. -#}
{% macro forecast_window(date_column) -%}
    {%- if metrify.partition_days() is not none -%}
    {{ metrify.in_partition_window(date_column, days_after=1) }}
    {%- else -%}
    {%- set changes -%}
        (select local_date, forecast_at_utc as changed_at_utc from {{ ref('stg_ops__load_forecasts') }}
         union all
         select local_date, loaded_at_utc as changed_at_utc from {{ ref('stg_ops__load_actuals') }})
    {%- endset -%}
    {{ metrify.incremental_window(date_column, changes, 'local_date', 'changed_at_utc', cast_to='date', watermark_column='last_changed_at_utc') }}
    {%- endif -%}
{%- endmacro %}
