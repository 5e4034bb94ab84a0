-- The local calendar of each weather station: the time zone of the meters it serves (the first by
-- name when they differ). Weather days are put on it so they line up with consumption days; a station
-- that serves no meter is not here, and its days stay UTC.
select weather_station_id as station_id, min(timezone) as timezone
from {{ ref('stg_ops__meters') }}
where weather_station_id is not null
group by weather_station_id
