select
    meter_id,
    segment,
    region,
    weather_station_id,
    grid_node_id,
    tariff,
    timezone,
    installed_on,
    {{ to_utc('updated_at') }} as updated_at_utc
from {{ source('ops', 'meters') }}
