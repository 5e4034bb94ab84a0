"""Grid settings as a resource, so the grid stability asset gets them passed in, not from the environment."""

from __future__ import annotations

import dagster as dg


class GridResource(dg.ConfigurableResource):
    """`area`: the deployment's synchronous area, judging the grid nodes a run's config gives none for
    (METRIFY_GRID_AREA, else the home's settings file; unset: grid/areas.DEFAULT_AREA); `area_from`:
    which of those chose it (`Settings.grid_area_from`), for the warnings that name it."""

    area: str | None = None
    area_from: str | None = None
