{#- Division that yields null instead of failing on a zero denominator, always in floating point
    (Postgres would otherwise truncate integer / integer). -#}
{% macro safe_divide(numerator, denominator) -%}
    (cast({{ numerator }} as {{ dbt.type_float() }}) / nullif({{ denominator }}, 0))
{%- endmacro %}

{#- 1.0 when the condition holds, else 0.0: averaged, it gives the share of rows that meet it. -#}
{% macro indicator(condition) -%}
    (case when {{ condition }} then 1.0 else 0.0 end)
{%- endmacro %}

{#- max(expression, 0), null when the expression is null (Postgres' greatest() skips nulls,
    Snowflake's returns null: this behaves the same on both). -#}
{% macro positive_part(expression) -%}
    (case when ({{ expression }}) > 0 then ({{ expression }}) when ({{ expression }}) <= 0 then 0 end)
{%- endmacro %}

{#- The 97.5 % quantile of Student's t with `df` degrees of freedom (the critical value of a two-sided
    95 % interval), for df > 30: the Cornish-Fisher expansion around the normal quantile z (Abramowitz &
    Stegun 26.7.5, four terms), within 3e-8 of the exact value from df = 30 on. Smaller df read the
    exact values of the seed `student_t_critical_values`; the singular test
    `assert_t_critical_expansion_matches_seed` checks the two agree where both apply. -#}
{% macro t_critical_975(df) -%}
    {%- set z = 1.959963984540054 -%}
    {%- set g1 = (z ** 3 + z) / 4 -%}
    {%- set g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96 -%}
    {%- set g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384 -%}
    {%- set g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160 -%}
    {%- set v = 'cast(' ~ df ~ ' as ' ~ dbt.type_float() ~ ')' -%}
    ({{ z }} + {{ g1 }} / {{ v }} + {{ g2 }} / ({{ v }} * {{ v }}) + {{ g3 }} / ({{ v }} * {{ v }} * {{ v }})
     + {{ g4 }} / ({{ v }} * {{ v }} * {{ v }} * {{ v }}))
{%- endmacro %}

{#- A sum of energies that does not depend on the order the rows are added in. A float sum does, and
    PostgreSQL adds in scan order, which an incremental rebuild changes: a day's kWh changed in its last
    digits from one build to the next (69.10920000000002, then 69.10920000000003). The values are added
    as decimals (12 places; VEE's series carries 6) and the total is a float again. -#}
{% macro exact_sum(expression) -%}
    cast(sum(cast({{ expression }} as numeric(38, 12))) as {{ dbt.type_float() }})
{%- endmacro %}

{#- a - b for energies, in decimals as `exact_sum` adds them: 0.3 - 0.1 is 0.2, not 0.19999999999999998. -#}
{% macro exact_difference(a, b) -%}
    cast(cast({{ a }} as numeric(38, 12)) - cast({{ b }} as numeric(38, 12)) as {{ dbt.type_float() }})
{%- endmacro %}

{#- A derived energy (kWh) or power (kW) to `places` decimals, a float again: a product or difference of
    doubles carries binary noise into its last digits (1.1075 kWh in a quarter-hour is 4.43 kW, but
    1.1075 * 60.0 / 15 is 4.429999999999999; 3.1 - 3.1151 is -0.015099999999999891), which the API
    served as it stood. Readings carry 4 decimals and VEE's series 6: 6 keeps every digit they give.
    The double is first read as a decimal of 12 places, then rounded in decimals (half away from zero):
    a cast straight to `places` rounded a double a few ulps below a tie differently on PostgreSQL (which
    reads it to 15 significant digits: 5.481249999999999 is 5.48125, so 5.4813) and on fakesnow's
    DuckDB (which scales the double: 5.4812); through 12 places both give 5.4813, as Snowflake does. -#}
{% macro rounded(expression, places=6) -%}
    {%- set decimal = 'cast(' ~ expression ~ ' as numeric(38, 12))' if places < 12 else expression -%}
    cast(cast({{ decimal }} as numeric(38, {{ places }})) as {{ dbt.type_float() }})
{%- endmacro %}

{#- The decimals `rounded` keeps for a grid or weather measure, by its unit: enough to keep the finest
    step a source sends and the means of such samples, no digits below that (the binary noise of an
    average or a difference: 49.991453333333325 Hz, 0.052599999999998204 Hz, 3.6999999999999997 C).
      hz        6  frequency, its deviations and standard deviation (samples come to the mHz or 0.1 mHz,
                   50.0123; SOGL's limits are tens of mHz and a quiet hour's spread a few mHz: µHz
                   keeps two places below the finest sample)
      hz_per_s  8  RoCoF (0.1 mHz over a window of up to a minute is a step of 1.7 µHz/s)
      v         3  voltage (samples to 0.01 V, the UCI preset's to the mV)
      mw        3  load, capacity and margin (samples to the kW; a node carries tens of MW)
      minutes   4  durations in minutes (6 ms, below any sample cadence)
      s         3  durations in seconds (the RoCoF window: at least 500 ms)
      weather   4  degrees C, m/s, %, hPa and degree-days (instruments read to 0.1; the mean of an hour
                   or a day keeps three places below that)
    Energies (kWh, as in the consumption marts) and risk scores (0..1) keep rounded's 6. Shares are
    quotients, not noise (1 of an hour's 60 samples is 0.016666666666666666), and are served as
    computed, as `completeness` and `coverage` are. -#}
{% macro unit_places(unit) -%}
    {{ return({'hz': 6, 'hz_per_s': 8, 'v': 3, 'mw': 3, 'minutes': 4, 's': 3, 'weather': 4}[unit]) }}
{%- endmacro %}
