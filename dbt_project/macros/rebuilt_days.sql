{#- Incremental strategy `rebuilt_days`: dbt's delete+insert on `unique_key`, after deleting the rows of
    the days the run rebuilt that its select no longer returns. delete+insert alone replaces only the
    keys the select returns, so a meter-day that lost all its readings (a `metrify ingest --replaces`
    withdrawal, a raw rollback) kept its rows until a full refresh; with this strategy the rebuilt days'
    rows equal a full build's (docs/warehouse.md, Incremental marts).

    The model says which rows a run rebuilt in `meta.rebuilt_days` (its config):
    - `day`: the target's column of the run's days. A partitioned run (`partition_days`) rebuilt the
      rows whose `day` lies in its days, widened by `days_before` / `days_after` (default 0) as the
      model's select widens them; `utc_hour` (optional) names a naive UTC timestamp that bounds those
      days too (`utc_partition_bounds`), so the delete reads them through the table's index.
    - `period` (default `day`): without partition days, the column the watermark's window is on; the
      run rebuilt every row from the earliest `period` its select returned (its window may start
      earlier, but the rows before the first one it found are left as stored: a conservative bound
      that never deletes a row a full build would keep).
    - `processing_day`, instead of the above: the mart is by processing day (`processing_days_window`),
      whose window is the same with or without partition days.
    - `kept_days_of` (optional): a tiered dataset whose days that left the hot tier keep their rows
      (`outside_days_left_hot_tier`, macros/hot_tier.sql): the lifecycle deleted their `ops` rows, so
      they are not emptied days. The model must `ref('stg_ops__lifecycle_days')` (a `depends_on`
      comment), which this macro reads while it executes.

    The delete and the insert run in one transaction on both targets (`rebuilt_days_transaction`). -#}
{% macro get_incremental_rebuilt_days_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set keys = arg_dict['unique_key'] -%}
    {%- set keys = [keys] if keys is string else keys -%}
    {%- set rebuilt = config.meta_get('rebuilt_days') -%}
    {%- if not keys or rebuilt is none -%}
        {{ exceptions.raise_compiler_error(this.identifier ~ ": incremental_strategy 'rebuilt_days' needs a unique_key and meta.rebuilt_days (macros/rebuilt_days.sql)") }}
    {%- endif -%}
    {%- set matches = [] -%}
    {%- for key in keys -%}
        {%- do matches.append('built.' ~ key ~ ' = rebuilt.' ~ key) -%}
    {%- endfor -%}
    {%- set dml -%}
    delete from {{ target }} as rebuilt
    where {{ metrify.rebuilt_rows(rebuilt, source) }}
        and not exists (select 1 from {{ source }} as built where {{ matches | join(' and ') }});
    {{ dbt.default__get_delete_insert_merge_sql(target, source, keys, arg_dict['dest_columns'], arg_dict['incremental_predicates']) }}
    {%- endset -%}
    {{ return(adapter.dispatch('rebuilt_days_transaction', 'metrify')(dml)) }}
{% endmacro %}

{#- The condition on the target (aliased `rebuilt`) for the rows this run rebuilt (see above). -#}
{% macro rebuilt_rows(rebuilt, source) -%}
    {%- set days = metrify.partition_days() -%}
    {%- if rebuilt.get('processing_day') -%}
    {{ metrify.processing_days_window('rebuilt.' ~ rebuilt['processing_day'], rebuilt['processing_day']) }}
    {%- elif days is not none -%}
    {{ metrify.in_partition_window('rebuilt.' ~ rebuilt['day'], rebuilt.get('days_before', 0), rebuilt.get('days_after', 0)) }}
    {%- if rebuilt.get('utc_hour') %} and {{ metrify.utc_partition_bounds('rebuilt.' ~ rebuilt['utc_hour'], rebuilt.get('days_before', 0), rebuilt.get('days_after', 0)) }}{% endif -%}
    {%- else -%}
    {%- set period = rebuilt.get('period', rebuilt['day']) -%}
    rebuilt.{{ period }} >= (select min(built.{{ period }}) from {{ source }} as built)
    {%- endif -%}
    {%- if rebuilt.get('kept_days_of') %}
    and {{ metrify.outside_days_left_hot_tier(rebuilt['kept_days_of'], 'rebuilt.' ~ rebuilt.get('day')) }}
    {%- endif -%}
{%- endmacro %}

{#- Both statements in one transaction: dbt-postgres runs the model in one already; dbt-snowflake's
    connection autocommits, so the statements go in an explicit one, as its own delete+insert does. -#}
{% macro default__rebuilt_days_transaction(dml) -%}
    {{ return(dml) }}
{%- endmacro %}

{% macro snowflake__rebuilt_days_transaction(dml) -%}
    {{ return(snowflake_dml_explicit_transaction(dml)) }}
{%- endmacro %}
