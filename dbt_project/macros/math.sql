{#- Division that yields null instead of failing on a zero denominator, always in floating point
    (Postgres would otherwise truncate integer / integer). -#}
{% macro safe_divide(numerator, denominator) -%}
    (cast({{ numerator }} as {{ dbt.type_float() }}) / nullif({{ denominator }}, 0))
{%- endmacro %}

{#- 1.0 when the condition holds, else 0.0: averaged, it gives the share of rows that meet it. -#}
{% macro indicator(condition) -%}
    (case when {{ condition }} then 1.0 else 0.0 end)
{%- endmacro %}

{#- max(expression, 0), null when the expression is null (Postgres' greatest() skips nulls,
    Snowflake's returns null: this behaves the same on both). -#}
{% macro positive_part(expression) -%}
    (case when ({{ expression }}) > 0 then ({{ expression }}) when ({{ expression }}) <= 0 then 0 end)
{%- endmacro %}
