"""Grid settings as a resource, so the grid stability asset gets them passed in, not from the environment."""

from __future__ import annotations

import dagster as dg


class GridResource(dg.ConfigurableResource):
    """`area`: the deployment's synchronous area, judging the grid nodes a run's config gives none for
    (METRIFY_GRID_AREA; unset: grid/areas.DEFAULT_AREA)."""

    area: str | None = None
