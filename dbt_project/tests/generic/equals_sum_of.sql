{#- Fails on every group of `model` whose `column_name` differs (beyond `tolerance`) from the sum of
    `compare_column` in `compare_model` over the same `group_by` columns, in either direction:
    e.g. daily energy must equal the sum of its hourly rows. -#}
{% test equals_sum_of(model, column_name, compare_model, compare_column, group_by, tolerance=0.000001) %}
with expected as (
    select {{ group_by | join(', ') }}, sum({{ compare_column }}) as compare_total
    from {{ compare_model }}
    group by {{ group_by | join(', ') }}
),

actual as (
    select {{ group_by | join(', ') }}, {{ column_name }} as actual_total
    from {{ model }}
)

select
    {% for col in group_by %}coalesce(a.{{ col }}, e.{{ col }}) as {{ col }}, {% endfor %}
    a.actual_total,
    e.compare_total
from actual as a
full outer join expected as e
    on {% for col in group_by %}a.{{ col }} = e.{{ col }}{% if not loop.last %} and {% endif %}{% endfor %}
where a.actual_total is null
   or e.compare_total is null
   or abs(a.actual_total - e.compare_total) > {{ tolerance }}
{% endtest %}
