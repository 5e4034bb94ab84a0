"""The lake as a Dagster resource. The client, `lake.Lake`, is a module of its own so that the CLI
reads and locks the lake without importing Dagster."""

from __future__ import annotations

import dagster as dg

from metrify_assets.resources.lake import Lake


class LakeResource(dg.ConfigurableResource):
    """The lake as a Dagster resource: `url` is a directory or `s3://bucket/prefix`."""

    url: str = ".metrify/lake"

    def get_lake(self) -> Lake:
        return Lake(self.url)
