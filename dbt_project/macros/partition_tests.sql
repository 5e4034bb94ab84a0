{#- In a partitioned run (`partition_days`), the bounds of its days on a naive UTC
    timestamp column: a day either side, since a local day lies within a day of its UTC date. A model
    that reads local days around the run's (`in_partition_window(..., days_before=, days_after=)`)
    widens the bounds alike. `true` outside partitioned runs. -#}
{% macro utc_partition_bounds(utc_column, days_before=0, days_after=0) -%}
    {%- set days = metrify.partition_days() -%}
    {%- if days is not none -%}
    ({{ utc_column }} >= {{ dbt.dateadd('day', -1 - days_before, "cast('" ~ days[0] ~ "' as timestamp)") }}
     and {{ utc_column }} < {{ dbt.dateadd('day', 2 + days_after, "cast('" ~ days[1] ~ "' as timestamp)") }})
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
        'stg_ops__grid_stability': 'hour_start_utc',
        'stg_ops__grid_state_events': 'started_at_utc',
        'stg_ops__weather_observations': 'observed_at_utc',
        'int_meter_readings_hourly': 'hour_start_utc',
    }) }}
{%- endmacro %}

{#- Views whose rows carry the partition's own local day (VEE writes the meter's local date, and
    indexes it; the forecast tables their series' day): their tests in a partitioned run select
    exactly the run's days. -#}
{% macro partition_date_columns() -%}
    {{ return({
        'stg_ops__vee_readings': 'local_date',
        'stg_ops__vee_days': 'local_date',
        'stg_ops__load_forecasts': 'local_date',
        'stg_ops__load_forecast_backtests': 'local_date',
        'stg_ops__load_actuals': 'local_date',
        'int_meter_readings_localized': 'local_date',
    }) }}
{%- endmacro %}

{#- The condition that limits a test on `relation` to the run's days: '' when it is not one of the
    views above or the run is not partitioned. -#}
{% macro partition_test_window(relation) -%}
    {%- set name = (relation.identifier or '') | lower -%}
    {%- if metrify.partition_days() is none -%}
        {{ return('') }}
    {%- elif name in metrify.partition_date_columns() -%}
        {{ return(metrify.in_partition_window(metrify.partition_date_columns()[name])) }}
    {%- elif name in metrify.partition_time_columns() -%}
        {{ return(metrify.utc_partition_bounds(metrify.partition_time_columns()[name])) }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- dbt's `get_where_subquery` (what a generic test selects from), with the partition window added
    for the views above; a test's own `where` still applies. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set window = metrify.partition_test_window(relation) -%}
    {%- if where or window -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where if where else 'true' }} and {{ window if window else 'true' }}) dbt_subquery
        {%- endset -%}
        {% do return(filtered) %}
    {%- else -%}
        {% do return(relation) %}
    {%- endif -%}
{%- endmacro %}
