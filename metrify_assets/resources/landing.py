"""The landing directory as a resource, so sensors and assets agree on where files arrive."""

from __future__ import annotations

from pathlib import Path

import dagster as dg


class LandingResource(dg.ConfigurableResource):
    """Where the CLI and the REST API drop message files when Kafka is not configured."""

    directory: str = ".metrify/landing"

    @property
    def path(self) -> Path:
        return Path(self.directory).resolve()
