"""Time-of-use periods, defined once and rendered to SQL so Python and the database agree.

A common three-rate tariff shape: peak on weekdays 16:00-19:00 local time, shoulder on weekdays
07:00-16:00 and 19:00-23:00, off-peak at night and all weekend.
"""

from __future__ import annotations

PEAK_HOURS = range(16, 19)
SHOULDER_HOURS = (*range(7, 16), *range(19, 23))


def tou_period(local_hour: int, is_weekend: bool) -> str:
    if is_weekend:
        return "off_peak"
    if local_hour in PEAK_HOURS:
        return "peak"
    if local_hour in SHOULDER_HOURS:
        return "shoulder"
    return "off_peak"


def tou_sql(hour_expr: str, dow_expr: str) -> str:
    """A SQL CASE for `tou_period` (dow: 0 = Sunday ... 6 = Saturday, as PostgreSQL's `dow`)."""
    shoulder = ", ".join(str(h) for h in SHOULDER_HOURS)
    peak = ", ".join(str(h) for h in PEAK_HOURS)
    return (
        f"CASE WHEN {dow_expr} IN (0, 6) THEN 'off_peak' "
        f"WHEN {hour_expr} IN ({peak}) THEN 'peak' "
        f"WHEN {hour_expr} IN ({shoulder}) THEN 'shoulder' ELSE 'off_peak' END"
    )
