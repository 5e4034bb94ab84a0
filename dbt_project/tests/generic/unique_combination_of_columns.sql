{#- Fails on every combination of `combination_of_columns` that occurs more than once (a composite key
    test). Name and argument are dbt_utils' own, so dbt (the manifest's `primary_key`) and
    dbt-project-evaluator recognise it as a primary-key test (docs/warehouse.md#primary-keys). -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
select {{ combination_of_columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1
{% endtest %}
