"""The grid room's definitions."""

from __future__ import annotations

import dagster as dg

from metrify_assets.grid.assets import grid_stability

defs = dg.Definitions(assets=[grid_stability])
