"""Typed Dagster resources: PostgreSQL (operational store) and the lake."""

from metrify_assets.resources.lake import Lake, LakeResource
from metrify_assets.resources.postgres import PostgresResource

__all__ = ["Lake", "LakeResource", "PostgresResource"]
