"""Typed Dagster resources: PostgreSQL (operational store), the lake, the landing directory, Kafka,
Snowflake, the quality settings, the alert channels and the Redis cache."""

from metrify_assets.resources.alerts import AlertChannelsResource
from metrify_assets.resources.cache import RedisResource
from metrify_assets.resources.lake import Lake, LakeResource
from metrify_assets.resources.landing import LandingResource
from metrify_assets.resources.postgres import PostgresResource
from metrify_assets.resources.quality import QualityResource
from metrify_assets.resources.snowflake import SnowflakeResource

__all__ = [
    "AlertChannelsResource",
    "Lake",
    "LakeResource",
    "LandingResource",
    "PostgresResource",
    "QualityResource",
    "RedisResource",
    "SnowflakeResource",
]
