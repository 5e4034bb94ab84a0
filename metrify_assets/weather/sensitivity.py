"""The temperature sensitivity of consumption: the rolling regression's settings, defined once for
Python and dbt (`warehouse.vars.dbt_vars`).

`marts.fct_weather_sensitivity` fits, per region, customer segment and as-of local date, an ordinary
least-squares regression of the segment's daily consumption per meter on that day's heating and
cooling degree-days over the `window_days` days ending on the as-of date:

    kwh_import_per_meter = intercept + kwh_per_hdd * HDD + kwh_per_cdd * CDD + error

A degree-day regressor enters only when at least `min_degree_days` days of the window have a positive
value of it (a winter window has no cooling degree-days: the fit is on HDD alone and the CDD columns
are null); a window with fewer than `min_days` usable days is not fitted (`fit_status`
`too_few_days`). docs/weather.md has the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

CONFIDENCE = 0.95  # the intervals' level; Student's t critical values: seed `student_t_critical_values`
FIT_STATUSES = ("fitted", "too_few_days", "no_degree_day_variation", "collinear_degree_days")


@dataclass(frozen=True)
class SensitivitySettings:
    window_days: int = 28  # four weeks: every weekday four times, so the weekly cycle averages out
    min_days: int = 14  # usable days (billing-ready consumption and weather) needed for a fit
    min_degree_days: int = 3  # days with positive HDD (or CDD) needed for that regressor to enter

    def __post_init__(self) -> None:
        # Two regressors and an intercept leave n - 3 degrees of freedom: at least one is needed.
        if not 4 <= self.min_days <= self.window_days:
            raise ValueError(f"need 4 <= min_days <= window_days, got {self.min_days}, {self.window_days}")
        if not 2 <= self.min_degree_days <= self.min_days:
            raise ValueError(f"need 2 <= min_degree_days <= min_days, got {self.min_degree_days}")

    def dbt_vars(self) -> dict[str, int]:
        return {
            "weather_sensitivity_window_days": self.window_days,
            "weather_sensitivity_min_days": self.min_days,
            "weather_sensitivity_min_degree_days": self.min_degree_days,
        }


SENSITIVITY = SensitivitySettings()
