-- One row per quarantined record and reason code (the `reasons` column is a comma-separated list;
-- a reviewer's note or a parser's detail is left out of the code: macros/lists.sql, reason_code).
{% set max_reasons = 20 %}
with quarantine as (
    select * from {{ ref('stg_ops__quarantine') }}
),

positions as (
    {{ integer_spine(max_reasons) }}
)

select
    q.batch_id,
    q.record_index,
    q.source,
    cast(q.quarantined_at_utc as date) as quarantined_date,
    {{ reason_code(list_item('q.reasons', 'p.n')) }} as reason
from quarantine as q
inner join positions as p on p.n <= {{ list_length('q.reasons') }}
