-- fct_weather_sensitivity takes Student's t critical values from the seed up to 30 degrees of freedom
-- and from the Cornish-Fisher expansion (macros/math.sql) beyond: where both apply (df 20..30) they
-- agree within 1e-6, so the expansion is rendered right on this database.
select df, t_975, {{ t_critical_975('df') }} as expansion
from {{ ref('student_t_critical_values') }}
where df >= 20 and abs(t_975 - {{ t_critical_975('df') }}) > 0.000001
