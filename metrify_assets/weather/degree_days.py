"""Degree-day base temperatures, defined once for Python and dbt (`warehouse.vars.dbt_vars`).

15.5 C is the UK's conventional heating base (buildings need no heating above it); 22 C a common
cooling base.
"""

from __future__ import annotations

HEATING_BASE_C = 15.5
COOLING_BASE_C = 22.0
