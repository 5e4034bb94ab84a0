"""The forecasting room's definitions."""

from __future__ import annotations

import dagster as dg

from metrify_assets.forecasting.assets import load_forecast

defs = dg.Definitions(assets=[load_forecast])
