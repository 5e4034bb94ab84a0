-- The calendar: one row per day, with the day type that selects the time-of-use periods (dim_time).
with days as (
    {{ dbt.date_spine('day', "cast('" ~ var('calendar_start') ~ "' as date)", "cast('" ~ var('calendar_end') ~ "' as date)") }}
)

select
    cast(date_day as date) as date_day,
    cast(extract(year from date_day) as integer) as year,
    cast(extract(quarter from date_day) as integer) as quarter,
    cast(extract(month from date_day) as integer) as month,
    cast(extract(day from date_day) as integer) as day_of_month,
    cast(extract(dow from date_day) as integer) as day_of_week,
    case when extract(dow from date_day) in (0, 6) then 'weekend' else 'weekday' end as day_type
from days
