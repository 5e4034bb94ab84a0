"""The data API's FastAPI app: `create_app(settings)` wires the routers, auth, limits and error
handlers, and opens what the routes use (a PostgreSQL pool, the lake, the Kafka producer when Kafka
is configured, the Redis cache when REDIS_URL is set) for the app's lifetime. `metrify api serve`
runs it on uvicorn; docs/api.md describes every endpoint, /docs shows them (routes/docs.py).
"""

from __future__ import annotations

import logging.config
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager

from fastapi import FastAPI

from metrify_assets.env import Settings, resolve_settings
from metrify_assets.meters.vee.store import SUITE as VEE_SUITE
from metrify_assets.observability import logs
from metrify_assets.observability.api_spans import install_tracing
from metrify_assets.quality import gx
from metrify_assets.resources.build import kafka_resource, postgres_resource
from metrify_assets.resources.cache import open_cache
from metrify_assets.resources.lake import Lake
from metrify_assets.serving.archive_horizon import ArchiveHorizon
from metrify_assets.serving.auth import RevocationList, TokenVerifier
from metrify_assets.serving.errors import install_error_handlers
from metrify_assets.serving.head import HeadAsGetMiddleware
from metrify_assets.serving.kafka import kafka_sender
from metrify_assets.serving.limits import install_limits
from metrify_assets.serving.pool import open_pool
from metrify_assets.serving.routes import data, health, ingest, review
from metrify_assets.serving.routes.docs import install_docs
from metrify_assets.serving.routes.metrics import install_metrics

API_VERSION = "1"


class ApiConfigError(RuntimeError):
    """The API cannot start as configured (say, no way to verify tokens)."""


def create_app(settings: Settings) -> FastAPI:
    """The API for `settings`; refuses to build without a token secret or public key."""
    if not settings.api.auth_configured:
        raise ApiConfigError(
            "the data API needs METRIFY_API_JWT_SECRET (HS256) or METRIFY_API_JWT_PUBLIC_KEY (RS256) to verify "
            "bearer tokens; `metrify api token` signs local tokens with the secret"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with ExitStack() as stack:
            postgres = postgres_resource(settings)
            with postgres.connect():  # starts the embedded server if need be; applies migrations
                pass
            # else a reviewer's first decision imports GX (VEE's suite guards its re-run): 4 to 10 s
            gx.warm_up_in_background([VEE_SUITE])
            app.state.pool = stack.enter_context(open_pool(postgres.get_url()))
            stack.enter_context(revocations.watching(app.state.pool))  # revoked tokens, reloaded every 5 s
            app.state.lake = Lake(settings.lake_url)
            app.state.sender = None
            app.state.kafka_probe = None
            if settings.uses_kafka:
                sender = stack.enter_context(kafka_sender(kafka_resource(settings)))
                app.state.sender, app.state.kafka_probe = sender, sender.probe
            app.state.cache = cache = open_cache(settings)
            if cache is not None:
                stack.callback(cache.close)
            yield

    app = FastAPI(
        title="Metrify data API",
        version=API_VERSION,
        summary="Ingest smart-meter, grid and weather records; read readings, marts and quality; review flags.",
        lifespan=lifespan,
        # A path with a trailing slash is a path the API does not have (404), not a 307 redirect
        # answered before authentication to a path whose POST body a client may not resend.
        redirect_slashes=False,
        docs_url=None,  # install_docs: the pages with their assets served locally, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    revocations = RevocationList()
    app.state.verifier = TokenVerifier(settings.api, revocations)
    app.state.archive_horizon = ArchiveHorizon()  # the latest reading's archived days, from memory
    install_error_handlers(app)
    app.add_middleware(HeadAsGetMiddleware)  # innermost: limits and metrics see the HEAD
    install_limits(app, settings.api)
    install_tracing(settings.tracing)  # FastAPI traces each request (docs/operations.md#traces)
    install_metrics(app, settings)  # outermost: counts refused requests too; serves /metrics
    for router in (health.router, data.router, review.router, ingest.router):
        app.include_router(router)
    install_docs(app)
    return app


def app_from_env() -> FastAPI:
    """The app for the environment's settings: uvicorn's factory (`metrify api serve`, or
    `uvicorn --factory metrify_assets.serving.app:app_from_env` in a deployment). Logging is set up
    here, in each worker process, so Metrify's lines and uvicorn's own come out in the configured
    format however uvicorn was started (docs/operations.md#logs)."""
    settings = resolve_settings()
    logs.configure(settings.log)
    logging.config.dictConfig(logs.uvicorn_log_config(settings.log))
    return create_app(settings)
