"""`/healthz` (the process answers) and `/readyz` (its dependencies answer): no token needed.

Ready means PostgreSQL answers and, when configured, Kafka does; Redis is optional (reads fall back to
PostgreSQL), so a Redis outage shows in the body as `degraded` without taking the API out of rotation.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from metrify_assets.serving.output import json_response

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
def healthz() -> Response:
    return json_response({"status": "ok"})


def _postgres(request: Request) -> dict[str, Any]:
    try:
        with request.app.state.pool.connection(timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as err:  # noqa: BLE001 - any failure means not ready; the reason is reported
        return {"ok": False, "detail": f"{type(err).__name__}: {err}"}
    return {"ok": True}


def _kafka(request: Request) -> dict[str, Any] | None:
    probe = request.app.state.kafka_probe
    if probe is None:
        return None
    ok, detail = probe()
    return {"ok": ok, "detail": detail}


def _redis(request: Request) -> dict[str, Any] | None:
    cache = request.app.state.cache
    if cache is None:
        return None
    if cache.available():
        return {"ok": True}
    return {"ok": False, "detail": "unreachable: reads fall back to PostgreSQL"}


@router.get(
    "/readyz",
    summary="Readiness: PostgreSQL, Kafka and Redis reachable",
    responses={
        503: {
            "description": "Not ready: PostgreSQL or Kafka does not answer (the body, as a 200's, says which)"
        }
    },
)
def readyz(request: Request) -> Response:
    checks = {"postgres": _postgres(request), "kafka": _kafka(request), "redis": _redis(request)}
    configured = {name: check for name, check in checks.items() if check is not None}
    required_ok = configured["postgres"]["ok"] and configured.get("kafka", {"ok": True})["ok"]
    degraded = "redis" in configured and not configured["redis"]["ok"]
    status = "not_ready" if not required_ok else "degraded" if degraded else "ready"
    return json_response({"status": status, "checks": configured}, status_code=200 if required_ok else 503)
