{#- Time handling shared by Postgres and Snowflake. Convention: every timestamp leaves staging as a
    naive UTC timestamp, so truncation and grouping never depend on the session time zone. -#}

{#- A timezone-aware timestamp as a naive UTC timestamp. -#}
{% macro to_utc(column) -%}
    {{ return(adapter.dispatch('to_utc', 'metrify')(column)) }}
{%- endmacro %}

{% macro default__to_utc(column) -%}
    ({{ column }} at time zone 'UTC')
{%- endmacro %}

{% macro snowflake__to_utc(column) -%}
    convert_timezone('UTC', {{ column }})::timestamp_ntz
{%- endmacro %}

{#- A naive UTC timestamp as naive wall-clock time in an IANA zone given by a column or literal. -#}
{% macro utc_to_local(utc_column, tz_expression) -%}
    {{ return(adapter.dispatch('utc_to_local', 'metrify')(utc_column, tz_expression)) }}
{%- endmacro %}

{% macro default__utc_to_local(utc_column, tz_expression) -%}
    (({{ utc_column }} at time zone 'UTC') at time zone {{ tz_expression }})
{%- endmacro %}

{% macro snowflake__utc_to_local(utc_column, tz_expression) -%}
    convert_timezone('UTC', {{ tz_expression }}, {{ utc_column }})
{%- endmacro %}

{#- The local calendar date of a naive UTC timestamp in an IANA zone. -#}
{% macro local_date(utc_column, tz_expression) -%}
    cast({{ metrify.utc_to_local(utc_column, tz_expression) }} as date)
{%- endmacro %}

{#- Minutes in a local calendar day: 1440, or 1380 / 1500 on daylight-saving change days. -#}
{% macro local_day_minutes(date_column, tz_expression) -%}
    {{ return(adapter.dispatch('local_day_minutes', 'metrify')(date_column, tz_expression)) }}
{%- endmacro %}

{% macro default__local_day_minutes(date_column, tz_expression) -%}
    cast(extract(epoch from (
        (cast({{ date_column }} + 1 as timestamp) at time zone {{ tz_expression }})
        - (cast({{ date_column }} as timestamp) at time zone {{ tz_expression }})
    )) / 60 as integer)
{%- endmacro %}

{% macro snowflake__local_day_minutes(date_column, tz_expression) -%}
    datediff(
        'minute',
        convert_timezone({{ tz_expression }}, 'UTC', cast({{ date_column }} as timestamp_ntz)),
        convert_timezone({{ tz_expression }}, 'UTC', cast(dateadd('day', 1, {{ date_column }}) as timestamp_ntz))
    )
{%- endmacro %}

{#- A snapshot's `dbt_valid_from` / `dbt_valid_to` as a naive UTC timestamp. dbt stamps them with
    `snapshot_get_time()`, the session zone's wall time as a naive timestamp on both adapters
    (PostgreSQL `now()::timestamp`, Snowflake `to_timestamp_ntz(current_timestamp())`). Snowflake's
    `to_utc` reads a naive timestamp in the session zone already; PostgreSQL's would read it as UTC and
    yield a timestamptz, so it is made a timestamptz in the session zone first. -#}
{% macro snapshot_time_to_utc(column) -%}
    {{ return(adapter.dispatch('snapshot_time_to_utc', 'metrify')(column)) }}
{%- endmacro %}

{% macro default__snapshot_time_to_utc(column) -%}
    (cast({{ column }} as timestamp with time zone) at time zone 'UTC')
{%- endmacro %}

{% macro snowflake__snapshot_time_to_utc(column) -%}
    {{ metrify.snowflake__to_utc(column) }}
{%- endmacro %}
