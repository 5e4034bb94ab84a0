"""Typed Dagster resources: PostgreSQL (operational store), the lake, the landing directory, Kafka,
Snowflake, the quality and grid settings, the alert channels and the Redis cache; and the plain
clients two of them hand out, `lake.Lake` and `cache.Cache`, which import no Dagster.

A resource is imported from here on first use, not with the package: the CLI's quick commands
(`metrify review list`, `holds list`) reach the lake and the cache through this package without
paying for Dagster (about 1.2 s on 2 cores). `tests/cli/test_main.py` (the listings' imports) holds them to that.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metrify_assets.resources.alerts import AlertChannelsResource
    from metrify_assets.resources.cache_resource import RedisResource
    from metrify_assets.resources.grid import GridResource
    from metrify_assets.resources.lake_resource import LakeResource
    from metrify_assets.resources.landing import LandingResource
    from metrify_assets.resources.postgres import PostgresResource
    from metrify_assets.resources.quality import QualityResource
    from metrify_assets.resources.snowflake import SnowflakeResource

# Each resource's module in this package.
_MODULES = {
    "AlertChannelsResource": "alerts",
    "GridResource": "grid",
    "LakeResource": "lake_resource",
    "LandingResource": "landing",
    "PostgresResource": "postgres",
    "QualityResource": "quality",
    "RedisResource": "cache_resource",
    "SnowflakeResource": "snowflake",
}

__all__ = [
    "AlertChannelsResource",
    "GridResource",
    "LakeResource",
    "LandingResource",
    "PostgresResource",
    "QualityResource",
    "RedisResource",
    "SnowflakeResource",
]


def __getattr__(name: str) -> object:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULES[name]}"), name)
