-- Stability indicators per grid node and UTC hour: frequency deviation from nominal, the share of
-- samples outside +/-50 mHz and +/-200 mHz, the voltage range, and the worst system state reached
-- (normal within 49.8-50.2 Hz, alert within the statutory 49.5-50.5 Hz, emergency beyond).
{% set nominal = var('grid_nominal_frequency_hz') %}
with samples as (
    select
        grid_node_id,
        {{ dbt.date_trunc('hour', 'measured_at_utc') }} as hour_start_utc,
        frequency_hz,
        frequency_hz - {{ nominal }} as deviation_hz,
        abs(frequency_hz - {{ nominal }}) as abs_deviation_hz,
        voltage_v,
        load_mw
    from {{ ref('stg_ops__grid_status') }}
),

hourly as (
    select
        grid_node_id,
        hour_start_utc,
        count(*) as sample_count,
        avg(frequency_hz) as mean_frequency_hz,
        stddev_pop(deviation_hz) as std_deviation_hz,
        max(abs_deviation_hz) as max_abs_deviation_hz,
        avg({{ indicator('abs_deviation_hz > 0.05') }}) as share_beyond_50mhz,
        avg({{ indicator('abs_deviation_hz > 0.2') }}) as share_beyond_200mhz,
        min(voltage_v) as min_voltage_v,
        max(voltage_v) as max_voltage_v,
        avg(load_mw) as mean_load_mw
    from samples
    group by grid_node_id, hour_start_utc
)

select
    *,
    case
        when max_abs_deviation_hz > {{ var('grid_statutory_band_hz') }} then 'emergency'
        when max_abs_deviation_hz > {{ var('grid_normal_band_hz') }} then 'alert'
        else 'normal'
    end as system_state
from hourly
