{#- The days of `dataset` (a tiered dataset of `ops.lifecycle_days`: grid_status, weather_observations)
    whose rows the data lifecycle deleted from PostgreSQL and no restore brought back: `hot_deleted_at`
    set and no later `restored_at`, the rule of storage/days.py `hot_deleted_days` (docs/lifecycle.md).
    An incremental mart built from the hot samples keeps what it stored for such a day: a late sample
    would otherwise rebuild the day's hours from the few rows left in `ops` (delete+insert replaces
    every key the select returns). After `metrify restore` the day is hot again and rebuilt as any other.

    Renders a condition on `date_expression` (the dataset's day of a source row: the UTC day for grid
    and weather samples) that is false on those days, in every incremental run, partitioned or not;
    `true` on a full build, which rebuilds every table from what `ops` holds (docs/warehouse.md).
    While dbt executes it logs the days it leaves out (those of the run's partition in a partitioned
    run), so the build's log, and Dagster's, says which days a run kept. -#}
{% macro outside_days_left_hot_tier(dataset, date_expression) -%}
    {%- set lifecycle_days -%}
        (select day from {{ ref('stg_ops__lifecycle_days') }}
         where dataset = '{{ dataset }}' and hot_deleted_at_utc is not null
             and (restored_at_utc is null or restored_at_utc < hot_deleted_at_utc))
    {%- endset -%}
    {%- if is_incremental() -%}
    {%- if execute -%}
        {%- set kept = run_query('select day from ' ~ lifecycle_days ~ ' as d where '
            ~ metrify.in_partition_window('d.day') ~ ' order by day').columns[0].values() -%}
        {%- if kept | length > 0 -%}
            {%- set named = kept[:10] | join(', ') ~ (', ...' if kept | length > 10 else '') -%}
            {{ log(this.identifier ~ ': kept as stored ' ~ (kept | length) ~ ' day(s) of ' ~ dataset
                ~ ' whose rows left PostgreSQL (data lifecycle, not restored): ' ~ named, info=true) }}
        {%- endif -%}
    {%- endif -%}
    {{ date_expression }} not in {{ lifecycle_days }}
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}
