-- One row per day type and local hour with its time-of-use period. The periods come from the
-- `time_of_use_periods` seed, which is generated from and tested against meters/time_of_use.py.
select
    day_type,
    cast(local_hour as integer) as local_hour,
    tou_period,
    tou_period = 'peak' as is_peak
from {{ ref('time_of_use_periods') }}
