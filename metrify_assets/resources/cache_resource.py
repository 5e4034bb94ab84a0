"""The Redis cache as a Dagster resource. The client, `cache.Cache`, is a module of its own so that the
CLI and the API keep the cache coherent without importing Dagster."""

from __future__ import annotations

import dagster as dg

from metrify_assets.resources.cache import DEFAULT_TTL_S, Cache


class RedisResource(dg.ConfigurableResource):
    """The Redis cache (REDIS_URL). `url` empty: no cache; writers then skip it."""

    url: str = ""
    ttl_s: int = DEFAULT_TTL_S

    def get_cache(self) -> Cache | None:
        return Cache(self.url, ttl_s=self.ttl_s) if self.url else None
