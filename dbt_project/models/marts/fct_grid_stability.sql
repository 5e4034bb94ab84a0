-- Stability indicators per grid node and UTC hour. The first columns are computed here from the
-- samples (frequency deviation from nominal, the share of samples outside +/-50 mHz and +/-200 mHz,
-- the voltage range, the mean load), as ops.grid_stability counts them: a sample the asset left out
-- as a sensor fault (stg_ops__grid_excluded_samples, docs/grid.md#samples-awaiting-review) is in
-- `sample_count`, `excluded_samples` and the voltage and load figures, in no frequency figure (an
-- hour of nothing else has them null). The rest come from the grid_stability asset
-- (stg_ops__grid_stability, docs/grid.md), which works on the raw samples against the node's
-- synchronous area: time outside the standard range, RoCoF, EN 50160 voltage compliance, load margin,
-- minutes in each ENTSO-E system state and the risk score.
-- `system_state` is the worst ENTSO-E state the node was in during the hour (normal / alert /
-- emergency, with SOGL's duration rules). It is null for an hour the asset has not processed yet.
-- Incremental by UTC day (the grid partitions): a partitioned run (its first and last day: `partition_days`, macros/incremental.sql) rebuilds
-- exactly those UTC days from their samples and their rows of ops.grid_stability, so its work is
-- proportional to its days. Without days every hour is recomputed, as for fct_weather_conditions.
-- Either way an incremental run keeps the hours it stored of a UTC day whose samples the data
-- lifecycle deleted from PostgreSQL and no restore brought back (macros/hot_tier.sql): a late sample
-- for such a day does not rebuild its hours from what is left.
-- Measures are served to the decimals of their unit (macros/math.sql `rounded` and `unit_places`:
-- Hz to 6, Hz/s to 8, V and MW to 3, minutes to 4, seconds to 3), without the binary noise of a mean
-- or a difference (49.991453333333325 Hz, 0.052599999999998204 Hz); the risk scores to 6 decimals;
-- the shares (quotients of sample counts, 1/60 = 0.016666666666666666) as computed.
{{ config(
    materialized='incremental',
    unique_key=['grid_node_id', 'hour_start_utc'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['grid_node_id', 'hour_start_utc']}],
) }}
{% set nominal = var('grid_nominal_frequency_hz') %}
{%- set hz, hz_per_s, volt, mw = unit_places('hz'), unit_places('hz_per_s'), unit_places('v'), unit_places('mw') %}
{%- set minutes, seconds = unit_places('minutes'), unit_places('s') %}
with excluded as (
    select grid_node_id, measured_at_utc
    from {{ ref('stg_ops__grid_excluded_samples') }}
    where {{ in_partition_window('utc_date') }}
),

samples as (
    select
        g.grid_node_id,
        {{ dbt.date_trunc('hour', 'g.measured_at_utc') }} as hour_start_utc,
        x.measured_at_utc as excluded_at,
        -- Null for a sample left out: in no frequency figure.
        case when x.measured_at_utc is null then g.frequency_hz end as frequency_hz,
        g.voltage_v,
        g.load_mw
    from {{ ref('stg_ops__grid_status') }} as g
    left join excluded as x
        on g.grid_node_id = x.grid_node_id
        and g.measured_at_utc = x.measured_at_utc
    where {{ utc_day_bounds('g.measured_at_utc') }}
        and {{ outside_days_left_hot_tier('grid_status', 'cast(g.measured_at_utc as date)') }}
),

deviations as (
    select
        *,
        frequency_hz - {{ nominal }} as deviation_hz,
        abs(frequency_hz - {{ nominal }}) as abs_deviation_hz
    from samples
),

hourly as (
    select
        grid_node_id,
        hour_start_utc,
        count(*) as sample_count,
        count(excluded_at) as excluded_samples,
        avg(frequency_hz) as mean_frequency_hz,
        stddev_pop(deviation_hz) as std_deviation_hz,
        max(abs_deviation_hz) as max_abs_deviation_hz,
        -- Shares of the samples that count; avg of a numeric literal: numeric on PostgreSQL, a
        -- fixed-point or double on Snowflake.
        cast(avg(case when excluded_at is null then {{ indicator('abs_deviation_hz > 0.05') }} end) as {{ dbt.type_float() }}) as share_beyond_50mhz,
        cast(avg(case when excluded_at is null then {{ indicator('abs_deviation_hz > 0.2') }} end) as {{ dbt.type_float() }}) as share_beyond_200mhz,
        min(voltage_v) as min_voltage_v,
        max(voltage_v) as max_voltage_v,
        avg(load_mw) as mean_load_mw
    from deviations
    group by grid_node_id, hour_start_utc
),

stability as (
    select * from {{ ref('stg_ops__grid_stability') }}
    where {{ in_partition_window('utc_date') }}
)

select
    h.grid_node_id,
    h.hour_start_utc,
    h.sample_count,
    {{ rounded('h.mean_frequency_hz', hz) }} as mean_frequency_hz,
    {{ rounded('h.std_deviation_hz', hz) }} as std_deviation_hz,
    {{ rounded('h.max_abs_deviation_hz', hz) }} as max_abs_deviation_hz,
    h.share_beyond_50mhz,
    h.share_beyond_200mhz,
    {{ rounded('h.min_voltage_v', volt) }} as min_voltage_v,
    {{ rounded('h.max_voltage_v', volt) }} as max_voltage_v,
    {{ rounded('h.mean_load_mw', mw) }} as mean_load_mw,
    s.worst_state as system_state,
    s.area,
    {{ rounded('s.mean_deviation_hz', hz) }} as mean_deviation_hz,
    {{ rounded('s.max_abs_steady_state_hz', hz) }} as max_abs_steady_state_hz,
    {{ rounded('s.standard_range_hz', hz) }} as standard_range_hz,
    s.share_outside_standard,
    {{ rounded('s.minutes_outside_standard', minutes) }} as minutes_outside_standard,
    {{ rounded('s.covered_minutes', minutes) }} as covered_minutes,
    {{ rounded('s.rocof_max_hz_s', hz_per_s) }} as rocof_max_hz_s,
    {{ rounded('s.rocof_window_s', seconds) }} as rocof_window_s,
    {{ rounded('s.mean_voltage_v', volt) }} as mean_voltage_v,
    s.voltage_windows,
    s.voltage_within_share,
    s.voltage_week_within_share,
    s.voltage_week_compliant,
    {{ rounded('s.max_load_mw', mw) }} as max_load_mw,
    {{ rounded('s.capacity_mw', mw) }} as capacity_mw,
    {{ rounded('s.min_load_margin_mw', mw) }} as min_load_margin_mw,
    s.min_load_margin_share,
    {{ rounded('s.alert_minutes', minutes) }} as alert_minutes,
    {{ rounded('s.emergency_minutes', minutes) }} as emergency_minutes,
    -- 0..1 from the figures above: 0.601, not 0.6009999999999943
    {{ rounded('s.risk_score') }} as risk_score,
    {{ rounded('s.risk_frequency') }} as risk_frequency,
    {{ rounded('s.risk_voltage') }} as risk_voltage,
    {{ rounded('s.risk_load') }} as risk_load,
    s.risk_components,
    -- Last: on_schema_change appends it to a table built before it (older hours keep null).
    h.excluded_samples
from hourly as h
left join stability as s
    on h.grid_node_id = s.grid_node_id
    and h.hour_start_utc = s.hour_start_utc
