{#- The columns of `relation` but those named in `except`, as a select list: a model that changes a few
    of a parent's columns selects the others through this instead of naming each again (what
    dbt_utils.star does; the project has no package dependencies). The names are read from the
    warehouse when the model runs, after its parents are built; a name in `except` the relation lacks
    is an error (a renamed column would otherwise come through twice). While dbt only parses the
    project nothing can be read, and the list is `*`. -#}
{% macro star(relation, except=[]) -%}
    {%- if not execute -%}
        {{- return('*') -}}
    {%- endif -%}
    {%- set excluded = except | map('lower') | list -%}
    {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {%- set missing = excluded | reject('in', names) | list -%}
    {%- if not names or missing -%}
        {{- exceptions.raise_compiler_error(
            'star(' ~ relation ~ '): ' ~ ('no columns (is it built?)' if not names else 'no column ' ~ missing | join(', '))) -}}
    {%- endif -%}
    {{- return(names | reject('in', excluded) | join(', ')) -}}
{%- endmacro %}
