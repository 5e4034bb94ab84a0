-- ENTSO-E system-state events per grid node (docs/grid.md): when a node entered alert or emergency,
-- when it left (null while the state still held at its newest sample), the rule that fired, the peak
-- deviation, and the duration in minutes of a closed event.
-- Incremental by start day (an event belongs to the UTC day it started). A partitioned run (days
-- `partition_days`) replaces the events that started on its days (the pre-hook first removes them,
-- so an event a re-run no longer finds goes too) and refreshes the earlier events the grid run over
-- those days may have changed: the ones in progress at its first midnight (their end and peak come
-- from the day they continue into), and the ones this table still holds open (a run that reads a
-- node's data resume after a gap closes them). Without days every event is recomputed.
-- The pre-hook removes a run's events only for the node-days `ops` still holds grid figures of
-- (ops.grid_stability, written for every node-hour the grid asset analysed): the data lifecycle
-- expires a day's figures and its closed events together, and a run over such a day keeps its events.
-- The peak deviation is served to the µHz and the duration to 4 decimals of a minute (macros/math.sql
-- `rounded` and `unit_places`, as fct_grid_stability's figures).
{{ config(
    materialized='incremental',
    unique_key=['grid_node_id', 'started_at_utc'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    pre_hook="{% if is_incremental() and partition_days() is not none %}delete from {{ this }} where {{ in_partition_window('start_utc_date') }} and (grid_node_id, start_utc_date) in (select distinct grid_node_id, utc_date from {{ ref('stg_ops__grid_stability') }} where {{ in_partition_window('utc_date') }}){% endif %}",
    indexes=[{'columns': ['grid_node_id', 'started_at_utc']}],
) }}
-- depends_on: {{ ref('stg_ops__grid_stability') }}
select
    e.grid_node_id,
    e.started_at_utc,
    e.ended_at_utc,
    e.state,
    e.rule,
    e.area,
    e.start_utc_date,
    {{ rounded('e.peak_deviation_hz', unit_places('hz')) }} as peak_deviation_hz,
    e.ended_at_utc is null as is_open,
    -- double precision on PostgreSQL, a fixed-point number on Snowflake (datediff is an integer): a
    -- float on both (`rounded` casts to one)
    {{ rounded(dbt.datediff('e.started_at_utc', 'e.ended_at_utc', 'second') ~ ' / 60.0', unit_places('minutes')) }} as duration_minutes
from {{ ref('stg_ops__grid_state_events') }} as e
where {{ in_partition_window('e.start_utc_date') }}
{%- set days = partition_days() %}
{%- if is_incremental() and days is not none %}
{%- set first_midnight = "cast('" ~ days[0] ~ "' as timestamp)" %}
    or (
        e.started_at_utc < {{ first_midnight }}
        and (e.ended_at_utc is null or e.ended_at_utc >= {{ first_midnight }})
    )
    or exists (
        select 1 from {{ this }} as held
        where held.is_open
            and held.grid_node_id = e.grid_node_id
            and held.started_at_utc = e.started_at_utc
    )
{%- endif %}
