"""Build the resources from `Settings`: embedded defaults, or the configured services."""

from __future__ import annotations

from typing import Any

import dagster as dg

from metrify_assets.env import Settings
from metrify_assets.resources.lake import LakeResource
from metrify_assets.resources.landing import LandingResource
from metrify_assets.resources.postgres import PostgresResource


def postgres_resource(settings: Settings) -> PostgresResource:
    """A directly usable resource (the CLI's): the URL's value, not an `EnvVar` reference."""
    return PostgresResource(url=settings.postgres_url, data_dir=str(settings.pg_data_dir))


def build_resources(settings: Settings) -> dict[str, Any]:
    """Resources keyed as the assets expect them. Secrets (the PostgreSQL URL) stay `dg.EnvVar`s."""
    postgres = (
        PostgresResource(url=dg.EnvVar("METRIFY_POSTGRES_URL"))
        if settings.postgres_url
        else PostgresResource(data_dir=str(settings.pg_data_dir))
    )
    return {
        "postgres": postgres,
        "lake": LakeResource(url=settings.lake_url),
        "landing": LandingResource(directory=str(settings.landing_dir)),
    }
