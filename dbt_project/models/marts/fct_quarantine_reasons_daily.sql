-- How often each reason code sent records to quarantine, per day and source.
select
    quarantined_date as activity_date,
    source,
    reason,
    count(*) as record_count
from {{ ref('int_quarantine_reasons') }}
group by quarantined_date, source, reason
