{#- Helpers for the comma-separated code lists that the operational tables store
    (quarantine reasons, status flags): split_part over a small integer spine works on both
    Postgres and Snowflake, unlike their native unnest / split_to_table. -#}

{#- Number of items in a comma-separated list (0 for null or empty). -#}
{% macro list_length(column) -%}
    (case when coalesce({{ column }}, '') = '' then 0
          else {{ dbt.length(column) }} - {{ dbt.length(dbt.replace(column, "','", "''")) }} + 1 end)
{%- endmacro %}

{#- A one-column relation `n` = 1..upper, for exploding lists by position. -#}
{% macro integer_spine(upper) -%}
    {%- for n in range(1, upper + 1) %}
    select {{ n }} as n{% if not loop.last %} union all{% endif %}
    {%- endfor %}
{%- endmacro %}

{#- The item at a 1-based position given by an SQL expression (dbt.split_part wants a literal). -#}
{% macro list_item(column, position_expression) -%}
    trim(split_part({{ column }}, ',', {{ position_expression }}))
{%- endmacro %}

{#- A quarantine reason without the free text some carry: a reviewer's note (`review_rejected:<note>`)
    or a parser's detail (`malformed:invalid_json (<detail>)`), so counts group by code. The same rule
    as `reason_code` in metrify_assets/quality/quarantine.py. -#}
{% macro reason_code(reason) -%}
    (case when {{ reason }} like 'review_rejected:%' then 'review_rejected'
          else trim(split_part({{ reason }}, ' (', 1)) end)
{%- endmacro %}
