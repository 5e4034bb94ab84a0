"""Typed Dagster resources: PostgreSQL (operational store), the lake, the landing directory, Kafka,
Snowflake, and the quality settings."""

from metrify_assets.resources.lake import Lake, LakeResource
from metrify_assets.resources.landing import LandingResource
from metrify_assets.resources.postgres import PostgresResource
from metrify_assets.resources.quality import QualityResource
from metrify_assets.resources.snowflake import SnowflakeResource

__all__ = [
    "Lake",
    "LakeResource",
    "LandingResource",
    "PostgresResource",
    "QualityResource",
    "SnowflakeResource",
]
