{#- In a partitioned run (vars `min_date`..`max_date`), the bounds of its days on a naive UTC
    timestamp column: a day either side, since a local day lies within a day of its UTC date. `true`
    outside partitioned runs. -#}
{% macro utc_partition_bounds(utc_column) -%}
    {%- if var('min_date', none) is not none -%}
    ({{ utc_column }} >= {{ dbt.dateadd('day', -1, "cast('" ~ var('min_date') ~ "' as timestamp)") }}
     and {{ utc_column }} < {{ dbt.dateadd('day', 2, "cast('" ~ var('max_date', var('min_date')) ~ "' as timestamp)") }})
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{#- The UTC time column of each view that holds history: in a partitioned run, tests on these views
    check the run's days only, so a run's tests cost what its days cost, not what the history holds
    (the rest of the history was tested by the runs that built it). -#}
{% macro partition_time_columns() -%}
    {{ return({
        'stg_ops__meter_readings': 'reading_start_utc',
        'stg_ops__anomaly_scores': 'reading_start_utc',
        'stg_ops__enriched_meter_readings': 'reading_start_utc',
        'stg_ops__grid_status': 'measured_at_utc',
        'stg_ops__weather_observations': 'observed_at_utc',
        'int_meter_readings_localized': 'reading_start_utc',
        'int_meter_readings_hourly': 'hour_start_utc',
    }) }}
{%- endmacro %}

{#- dbt's `get_where_subquery` (what a generic test selects from), with the partition window added
    for the views above; a test's own `where` config still applies. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set column = metrify.partition_time_columns().get((relation.identifier or '') | lower) -%}
    {%- set window = metrify.utc_partition_bounds(column) if column and var('min_date', none) is not none else '' -%}
    {%- if where or window -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where if where else 'true' }} and {{ window if window else 'true' }}) dbt_subquery
        {%- endset -%}
        {% do return(filtered) %}
    {%- else -%}
        {% do return(relation) %}
    {%- endif -%}
{%- endmacro %}
