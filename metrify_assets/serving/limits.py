"""Request limits of the data API: body size (413) and a rate per caller (429 with `Retry-After`).

Both are pure ASGI middlewares, so a refused request costs neither routing nor a body read: a
`Content-Length` over the limit is answered before the app runs, and a chunked body is counted as
it streams in (the read that crosses the limit raises a 413 the error handlers answer).

The rate limiter keeps a token bucket per caller: the token's subject when the request carries a
valid bearer token, else the client address (behind a proxy, run uvicorn with `--proxy-headers
--forwarded-allow-ips=<proxy>` so that the address is the caller's, not the proxy's). A bucket holds
`per_minute` requests (the burst) and refills at `per_minute / 60` a second. `/healthz`, `/readyz`
and `/metrics` are exempt: probes and scrapers must never be throttled.

The buckets live in each API process's memory: N processes (replicas x uvicorn workers) behind a
load balancer that spreads a caller's requests evenly let that caller make up to N x the limit. Set
METRIFY_API_RATE_LIMIT to the per-caller rate wanted divided by N, or route each caller to one
process (sticky sessions) and set the rate itself.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metrify_assets.env import ApiSettings
from metrify_assets.serving.auth import caller_principal
from metrify_assets.serving.errors import ApiError, error_response

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_CALLERS = 100_000  # buckets kept at most: a flood of addresses cannot grow memory without bound


class RateLimiter:
    """Token buckets per caller. Thread-safe; O(1) per call: buckets are kept in the order they were
    last used, and a bucket idle for a whole refill (60 s) is full again, no different from a new
    one, so it is dropped from the old end as calls come in."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError(f"the rate limit must be positive, got {per_minute}")
        self.per_minute = per_minute
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0  # tokens a second
        self._refill_s = 60.0
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # caller: (tokens, at)
        self._lock = threading.Lock()

    def acquire(self, caller: str) -> float:
        """Take one request from `caller`'s bucket: 0.0 if it may go ahead, else the seconds to wait."""
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.pop(caller, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - at) * self._rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self._rate
            self._buckets[caller] = (tokens, now)
            while self._buckets:
                oldest, (_, seen) = next(iter(self._buckets.items()))
                if now - seen < self._refill_s and len(self._buckets) <= MAX_CALLERS:
                    break
                del self._buckets[oldest]
            return wait

    def __len__(self) -> int:
        return len(self._buckets)


def _path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def caller_key(scope: Scope) -> str:
    principal = caller_principal(scope)
    if principal is not None:
        return f"sub:{principal.subject}"
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "ip:unknown"


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.limiter = RateLimiter(per_minute, clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _path(scope) in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        wait = self.limiter.acquire(caller_key(scope))
        if wait <= 0.0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        response = error_response(
            429,
            "rate_limited",
            f"over {self.limiter.per_minute} requests a minute; retry in {retry_after} s",
            {"limit_per_minute": self.limiter.per_minute, "retry_after_s": retry_after},
            {"Retry-After": str(retry_after)},
        )
        await response(scope, receive, send)


class BodyTooLargeError(ApiError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            413,
            "payload_too_large",
            f"the request body is over the limit of {max_bytes} bytes",
            {"max_body_bytes": max_bytes},
        )


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_bytes:
            await BodyTooLargeError(self.max_bytes).response()(scope, receive, send)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError as exc:  # the app read past the limit and did not answer it itself
            if started:
                raise
            await exc.response()(scope, receive, send)


def install_limits(app: FastAPI, settings: ApiSettings, clock: Callable[[], float] = time.monotonic) -> None:
    """Add both limits to `app`, the rate limit outermost (a throttled caller's body is never read)."""
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimitMiddleware, per_minute=settings.rate_limit_per_minute, clock=clock)
