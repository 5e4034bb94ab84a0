{#- Fails on every row of `model` where the boolean SQL `expression` does not hold (a null result
    fails too, so write the expression to hold for the nulls you accept), e.g. "the status counts add
    up to the expected intervals". Scope it with the test's `where` config. -#}
{% test expression_is_true(model, expression) %}
select *
from {{ model }}
where not coalesce(({{ expression }}), false)
{% endtest %}
