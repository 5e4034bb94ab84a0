{#- Use custom schema names verbatim (`marts`, not `<target schema>_marts`), so analysts and the
    data API find the marts in the same schema on every target. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
