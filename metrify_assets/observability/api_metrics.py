"""The data API's request metrics (catalogue.API), counted by a pure ASGI middleware in the process
that serves them: requests per route *template* and status, latency per route, requests in flight;
and whether its Redis cache answers (`CacheCollector`, at scrape time).

Labels name the route's template (`/v1/meters/{meter_id}/readings`), never the raw path, so a
scraper sees a bounded number of series whatever callers send; a path no route matches is
`unmatched`. A request refused before routing (413, 429) is still labelled with its route.
Each API process counts its own requests: with several uvicorn workers, a scrape reaches one of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metrify_assets.observability.catalogue import REQUEST_BUCKETS
from metrify_assets.observability.families import SPECS
from metrify_assets.resources.cache import Cache

UNMATCHED = "unmatched"
# Any other method a caller sends is `other`: the label stays bounded.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ApiMetrics:
    """The three API metrics, registered in `registry` (each app its own: tests build many apps).

    Without their `_created` samples (`metrify_api_requests_created`, ...): prometheus_client adds one
    per series of a counter or histogram, doubling the series for a creation time nothing reads (a
    counter reset shows as a drop). Its switch, `disable_created_metrics`, is the process's, read as
    each scrape collects: this process's only other metrics (the pipeline's) have none anyway."""

    def __init__(self, registry: CollectorRegistry) -> None:
        disable_created_metrics()
        requests = SPECS["metrify_api_requests_total"]
        duration = SPECS["metrify_api_request_duration_seconds"]
        in_progress = SPECS["metrify_api_requests_in_progress"]
        self.requests = Counter(
            requests.name.removesuffix("_total"), requests.help, requests.labels, registry=registry
        )
        self.duration = Histogram(
            duration.name, duration.help, duration.labels, registry=registry, buckets=REQUEST_BUCKETS
        )
        self.in_progress = Gauge(in_progress.name, in_progress.help, in_progress.labels, registry=registry)


class CacheCollector(Collector):
    """`metrify_api_cache_up`: whether the API's Redis answers PING when scraped. A Redis outage
    costs no request an error (reads fall back to PostgreSQL) and `/readyz` stays 200 `degraded`,
    so without it nothing Prometheus sees changes. No sample while the API has no cache (REDIS_URL
    unset). `cache` is read at each scrape: the app opens its cache when it starts."""

    def __init__(self, cache: Callable[[], Cache | None]) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        cache = self.cache()
        if cache is None:
            return
        spec = SPECS["metrify_api_cache_up"]
        family = GaugeMetricFamily(spec.name, spec.help)
        family.add_metric([], 1.0 if cache.available() else 0.0)
        yield family


def route_template(scope: Scope, received: Scope) -> str:
    """The template of the route that served (or would serve) the request: `scope` after the app
    answered, `received` a copy of it from before (a mount moves the path it matches on).

    A route (FastAPI's) sets itself on the scope. Anything else is matched now, as it came: a request
    answered before routing (413, 429), a path the router found nothing for, a mount (the docs' assets,
    labelled `/docs/assets/{path}`). HEAD is matched as the GET it is answered as (serving/head.py)."""
    route = scope.get("route")
    if route is None:
        as_routed = {**received, "method": "GET"} if received["method"] == "HEAD" else received
        # Every route, those of included routers too (FastAPI keeps them apart from the app's own).
        for candidate in iter_route_contexts(scope["app"].routes if "app" in scope else ()):
            match, _ = candidate.matches(as_routed)
            if match == Match.FULL:
                route = candidate
                break
    path = getattr(route, "path_format", None)
    return path if isinstance(path, str) else UNMATCHED


class ApiMetricsMiddleware:
    """Counts every HTTP request once it is answered (an unhandled error counts as a 500)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in METHODS else "other"
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        received = dict(scope)
        in_progress = self.metrics.in_progress.labels(method)
        in_progress.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            in_progress.dec()
            route = route_template(scope, received)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.duration.labels(method, route).observe(elapsed)
