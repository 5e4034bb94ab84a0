"""Typed Dagster resources: PostgreSQL (operational store), the lake, the landing directory."""

from metrify_assets.resources.lake import Lake, LakeResource
from metrify_assets.resources.landing import LandingResource
from metrify_assets.resources.postgres import PostgresResource

__all__ = ["Lake", "LakeResource", "LandingResource", "PostgresResource"]
