{#- Incremental facts keep their history when the hot tier's rows are archived out of `ops`, and
    re-compute only what may have changed since the last run: every period from the earliest one
    touched by source rows changed after the fact's watermark (`max(watermark_column)`; the
    consumption facts use VEE's `processed_at`, which moves when a late reading, an estimate or an
    edit changes an interval), and at least the last `var('incremental_lookback_days')` days (late
    enrichment, slow transactions).

    Renders a condition on `period_column` for the rows to (re)build: `true` on a full build.
    `source` holds `source_period_column` and `source_changed_column` for each row or group.

    A partitioned run (Dagster's daily partitions, `partition_days` below) names its first and last
    day: then exactly the local days in that range are (re)built, on `date_column`; `utc_column`
    (a naive UTC timestamp of the source) bounds the read to those days too, so it reads the run's
    days from the indexed `ops` tables instead of filtering the whole history (a `date_column` that
    passes an indexed `ops` column through, like VEE's `local_date`, needs no `utc_column`). -#}
{% macro incremental_window(period_column, source, source_period_column, source_changed_column, cast_to=none, date_column='local_date', utc_column=none, watermark_column='last_processed_at_utc') -%}
    {%- if metrify.partition_days() is not none -%}
    {{ metrify.in_partition_window(date_column) }}
    {%- if utc_column %} and {{ metrify.utc_partition_bounds(utc_column) }}{% endif -%}
    {%- elif is_incremental() -%}
    {%- set lookback_start = dbt.dateadd('day', -1 * var('incremental_lookback_days'), 'max(' ~ period_column ~ ')') -%}
    {%- set changed_from -%}
        (select min(changed.{{ source_period_column }}) from {{ source }} as changed
         where changed.{{ source_changed_column }} > (select max({{ watermark_column }}) from {{ this }}))
    {%- endset -%}
    {%- set lookback_from -%}
        (select {% if cast_to %}cast({{ lookback_start }} as {{ cast_to }}){% else %}{{ lookback_start }}{% endif %} from {{ this }})
    {%- endset -%}
    (
        {{ lookback_from }} is null
        or {{ period_column }} >= case
            when {{ changed_from }} is null then {{ lookback_from }}
            when {{ changed_from }} < {{ lookback_from }} then {{ changed_from }}
            else {{ lookback_from }}
        end
    )
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{#- The days of a partitioned run, first and last (inclusive), as dates; `none` outside one.
    Dagster passes them in the environment, `METRIFY_DBT_MIN_DATE` and `METRIFY_DBT_MAX_DATE`
    (warehouse/assets.py), read only while dbt executes: nothing the parse records depends on the days,
    so a build of new days starts from the parse state of the last build (dbt re-parses every file
    whenever `--vars` change, and the files whose parse read an environment variable that changed).
    The parse sees the run without days, whose branches hold every `ref` the models make. Vars
    `min_date` and `max_date` (`dbt build --vars '{min_date: 2026-03-28, max_date: 2026-03-29}'`)
    name the days too, and win over the environment; `max_date` defaults to `min_date`. -#}
{% macro partition_days() -%}
    {%- set first = var('min_date', none) -%}
    {%- set last = var('max_date', none) -%}
    {%- if first is none and execute -%}
        {%- set first = env_var('METRIFY_DBT_MIN_DATE', '') or none -%}
        {%- set last = env_var('METRIFY_DBT_MAX_DATE', '') or none -%}
    {%- endif -%}
    {%- if first is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set first = modules.datetime.date.fromisoformat(first | string) -%}
    {{ return([first, modules.datetime.date.fromisoformat(last | string) if last else first]) }}
{%- endmacro %}

{#- In a partitioned run, whether a date lies inside its days, optionally widened by `days_before`
    and `days_after` (a rolling window reads the days before its first as-of date, and a changed day
    moves the windows of the days after it); `true` otherwise. Tests use it to check only what the
    run built. -#}
{% macro in_partition_window(date_expression, days_before=0, days_after=0) -%}
    {%- set days = metrify.partition_days() -%}
    {%- if days is not none -%}
    {%- set first = days[0] - modules.datetime.timedelta(days=days_before) -%}
    {%- set last = days[1] + modules.datetime.timedelta(days=days_after) -%}
    ({{ date_expression }} between cast('{{ first }}' as date) and cast('{{ last }}' as date))
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{#- In a partitioned run, the run's UTC days exactly on a naive UTC timestamp column (the partitions of
    grid and weather samples are UTC days); `true` otherwise. A bound on the column itself, so
    PostgreSQL reads the days through the BRIN index on `observed_at AT TIME ZONE 'UTC'`. -#}
{% macro utc_day_bounds(utc_column) -%}
    {%- set days = metrify.partition_days() -%}
    {%- if days is not none -%}
    {%- set after_last = days[1] + modules.datetime.timedelta(days=1) -%}
    ({{ utc_column }} >= cast('{{ days[0] }}' as timestamp) and {{ utc_column }} < cast('{{ after_last }}' as timestamp))
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{#- Marts by processing day (the data-quality marts: a ledger row's `processed_at`, a quarantined
    record's `quarantined_at`, a score's `scored_at`). Those stamps are set when the row is written, so
    only the newest processing days change: an incremental run rebuilds the processing days from
    `var('incremental_lookback_days')` before the newest one `period_column` holds in the mart, and
    keeps the older ones, whose source rows the data lifecycle may have deleted from `ops`. The same
    with or without partition vars: a run's partitions are days of the data, not of its processing
    (a backfill of an old day is processed, and counted, today).

    Renders a condition on `date_expression` (the source's processing day): `true` on a full build. -#}
{% macro processing_days_window(date_expression, period_column='activity_date') -%}
    {%- if is_incremental() -%}
    {%- set newest -%}(select max({{ period_column }}) from {{ this }}){%- endset -%}
    (
        {{ newest }} is null
        or {{ date_expression }} >= (
            select cast({{ dbt.dateadd('day', -1 * var('incremental_lookback_days'), 'max(' ~ period_column ~ ')') }} as date)
            from {{ this }}
        )
    )
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}
