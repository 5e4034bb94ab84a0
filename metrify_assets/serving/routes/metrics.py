"""`GET /metrics`: the pipeline's and this process's request metrics in the Prometheus text format.

No token, like `/healthz`: a scraper has no JWT. The metrics are counts and timings, no records or
meter ids; a deployment that must keep them private restricts `/metrics` at the network (the
ingress answers it only to the Prometheus network, see docs/operations.md#metrics). The pipeline
metrics are computed on the API's PostgreSQL pool, in FastAPI's thread pool (a plain `def` route),
never on the event loop. `?scope=api` serves the request metrics alone, without a database query:
what a deployment scrapes from the API when `metrify metrics serve` exports the pipeline's
(deploy/prometheus/prometheus.yml).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from metrify_assets.env import Settings
from metrify_assets.observability.api_metrics import ApiMetrics, ApiMetricsMiddleware, CacheCollector
from metrify_assets.observability.metrics import PipelineCollector
from metrify_assets.orchestration.instance import local_instance
from metrify_assets.resources.build import kafka_resource
from metrify_assets.serving.errors import openapi_errors

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (pipeline and API)",
    response_class=Response,
    responses=openapi_errors(422),
)
def metrics(request: Request, scope: Literal["all", "api"] = "all") -> Response:
    registry: CollectorRegistry = (
        request.app.state.api_metrics_registry if scope == "api" else request.app.state.metrics_registry
    )
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """Count every request (outermost middleware: refused requests too) and serve `/metrics`."""
    api_registry = CollectorRegistry(auto_describe=False)
    app.add_middleware(ApiMetricsMiddleware, metrics=ApiMetrics(api_registry))
    api_registry.register(CacheCollector(lambda: getattr(app.state, "cache", None)))  # set as the app starts
    registry = CollectorRegistry(auto_describe=False)
    registry.register(api_registry)
    registry.register(
        PipelineCollector(
            lambda: app.state.pool.connection(timeout=5),
            kafka=kafka_resource(settings) if settings.uses_kafka else None,
            instance=lambda: local_instance(settings),  # opened on the first scrape
        )
    )
    app.state.metrics_registry = registry
    app.state.api_metrics_registry = api_registry
    app.include_router(router)
