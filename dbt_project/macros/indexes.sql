{#- The marts the data API pages through carry dbt-postgres' `indexes` config: one index on the page's
    ORDER BY key (metrify_assets/serving/datasets.py; after the node or station a path selects), which
    serves the first page, a cursor's `(key) > (...)` and a date range, and for a per-meter mart a
    second leading with the meter. Without them every page was a full scan and sort of the mart.
    fct_load_forecast has a third, on the forecast day its incremental delete selects (docs/warehouse.md,
    Indexes).

    dbt-postgres creates a model's `indexes` only when it creates the table: an incremental mart that
    exists already (built before an index was declared) would never get it. This post-hook (every mart,
    dbt_project.yml) creates each declared index the table lacks, compared by its columns, since dbt
    names an index by a hash that includes the time it was created. A no-op once they exist; a
    no-op on Snowflake, which has no indexes (dbt-snowflake ignores the config). -#}
{% macro ensure_indexes() -%}
    {{ return(adapter.dispatch('ensure_indexes', 'metrify')()) }}
{%- endmacro %}

{% macro default__ensure_indexes() -%}
    {%- set declared = config.get('indexes', default=[]) or [] -%}
    {%- if declared and execute -%}
        {%- set existing -%}
            select string_agg(a.attname, ',' order by k.n)
            from pg_index as i
            cross join lateral unnest(i.indkey) with ordinality as k(attnum, n)
            join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum
            where i.indrelid = '{{ this.include(database=False) }}'::regclass
            group by i.indexrelid
        {%- endset -%}
        {%- set present = run_query(existing).columns[0].values() -%}
        {%- for index in declared -%}
            {%- if adapter.parse_index(index).columns | join(',') not in present -%}
                {%- do run_query(get_create_index_sql(this, index)) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{% macro snowflake__ensure_indexes() -%}
{%- endmacro %}
