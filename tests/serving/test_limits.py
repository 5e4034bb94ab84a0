"""Request limits over real HTTP (uvicorn on a loopback port): 413 for a body over the limit, declared
or streamed, and 429 with `Retry-After` per caller, with an injected clock instead of sleeping."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from fastapi import Body, FastAPI
from starlette.types import Receive, Scope, Send

from metrify_assets.env import ApiSettings
from metrify_assets.serving import limits
from metrify_assets.serving.auth import TokenVerifier, issue_token
from metrify_assets.serving.errors import install_error_handlers
from metrify_assets.serving.limits import BodySizeLimitMiddleware, RateLimiter, install_limits
from tests.serving.uvicorn_thread import serve

SECRET = "a-test-secret-that-is-32-bytes-or-more"
MAX_BYTES = 1000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def build_app(per_minute: int, clock: FakeClock) -> FastAPI:
    settings = ApiSettings(jwt_secret=SECRET, rate_limit_per_minute=per_minute, max_body_bytes=MAX_BYTES)
    app = FastAPI()
    app.state.verifier = TokenVerifier(settings)
    install_error_handlers(app)
    install_limits(app, settings, clock=clock)

    @app.post("/echo")
    async def echo(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        return {"pad": len(body.get("pad", ""))}

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app


@contextmanager
def server(per_minute: int) -> Iterator[tuple[str, FakeClock]]:
    clock = FakeClock()
    with serve(build_app(per_minute, clock)) as url:
        yield url, clock


def token(subject: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(SECRET, subject, ["read"], timedelta(minutes=5))}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert (error["status"], error["code"]) == (status, code)
    return error


def padded(size: int) -> bytes:
    """A JSON object of exactly `size` bytes."""
    return json.dumps({"pad": "x" * (size - len('{"pad": ""}'))}).encode()


def chunks(data: bytes, size: int = 256) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


# --- body size ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def body_url() -> Iterator[str]:
    with server(per_minute=100_000) as (url, _):
        yield url


def test_a_declared_length_over_the_limit_is_413_before_the_body_is_sent(body_url: str) -> None:
    """Only the headers go out: a server that waited for the 100 MB would time the client out."""
    parts = urlsplit(body_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        conn.putrequest("POST", "/echo")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(100_000_000))
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413
        error = json.loads(response.read())["error"]
    finally:
        conn.close()
    assert error == {
        "status": 413,
        "code": "payload_too_large",
        "message": f"the request body is over the limit of {MAX_BYTES} bytes",
        "details": {"max_body_bytes": MAX_BYTES},
    }


def test_content_length_at_and_over_the_limit(body_url: str) -> None:
    ok = httpx.post(
        body_url + "/echo", content=padded(MAX_BYTES), headers={"Content-Type": "application/json"}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"pad": MAX_BYTES - len('{"pad": ""}')}
    over = httpx.post(
        body_url + "/echo", content=padded(MAX_BYTES + 1), headers={"Content-Type": "application/json"}
    )
    assert_error(over, 413, "payload_too_large")


def test_a_chunked_body_is_counted_while_it_streams(body_url: str) -> None:
    headers = {"Content-Type": "application/json"}
    ok = httpx.post(body_url + "/echo", content=chunks(padded(MAX_BYTES)), headers=headers)
    assert ok.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in ok.request.headers
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"pad": MAX_BYTES - len('{"pad": ""}')}
    over = httpx.post(body_url + "/echo", content=chunks(padded(MAX_BYTES * 3)), headers=headers)
    assert over.request.headers.get("Transfer-Encoding") == "chunked"
    assert_error(over, 413, "payload_too_large")


def test_the_middleware_answers_413_itself_around_an_app_without_handlers() -> None:
    """A bare ASGI app lets the limit's exception through: the middleware answers it."""
    seen: list[int] = []

    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        seen.append(size)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read"})

    with serve(BodySizeLimitMiddleware(bare, max_bytes=MAX_BYTES)) as url:
        assert httpx.post(url, content=chunks(b"y" * MAX_BYTES)).text == "read"
        assert_error(httpx.post(url, content=chunks(b"y" * (MAX_BYTES + 300))), 413, "payload_too_large")
    assert seen == [MAX_BYTES]


# --- rate ---------------------------------------------------------------------------------------------


def test_429_with_retry_after_after_the_burst_then_recovery() -> None:
    # 15 a minute: a burst of 15, then one request every 4 s (0.25 a second: exact in floating point).
    with server(per_minute=15) as (url, clock):
        assert [httpx.get(url + "/ping").status_code for _ in range(15)] == [200] * 15
        refused = httpx.get(url + "/ping")
        error = assert_error(refused, 429, "rate_limited")
        assert refused.headers["Retry-After"] == "4"
        assert error["details"] == {"limit_per_minute": 15, "retry_after_s": 4}
        # A throttled caller's body is never read: the rate limit answers before the size limit.
        big = httpx.post(
            url + "/echo", content=padded(MAX_BYTES * 2), headers={"Content-Type": "application/json"}
        )
        assert big.status_code == 429
        for _ in range(20):
            assert httpx.get(url + "/healthz").status_code == 200  # probes are exempt

        clock.advance(3)
        still = httpx.get(url + "/ping")
        assert still.status_code == 429 and still.headers["Retry-After"] == "1"
        clock.advance(1)
        assert httpx.get(url + "/ping").status_code == 200
        assert httpx.get(url + "/ping").status_code == 429  # one request came back, not the burst
        clock.advance(60)
        assert [httpx.get(url + "/ping").status_code for _ in range(16)] == [200] * 15 + [429]


def test_callers_are_keyed_by_token_subject_else_by_address() -> None:
    with server(per_minute=2) as (url, _):
        alice, bob = token("alice"), token("bob")
        assert [httpx.get(url + "/ping", headers=alice).status_code for _ in range(3)] == [200, 200, 429]
        # Another token of the same subject shares the bucket; another subject has its own.
        assert httpx.get(url + "/ping", headers=token("alice")).status_code == 429
        assert httpx.get(url + "/ping", headers=bob).status_code == 200
        # No token, or one that does not verify, counts against the address.
        forged = {"Authorization": "Bearer " + jwt.encode({"sub": "mallory", "exp": 2**40}, "x" * 40)}
        statuses = [httpx.get(url + "/ping", headers=h).status_code for h in ({}, forged, {})]
        assert statuses == [200, 200, 429]


def test_retry_after_is_at_least_one_second() -> None:
    with server(per_minute=120) as (url, _):
        statuses = [httpx.get(url + "/ping").status_code for _ in range(121)]
        assert statuses == [200] * 120 + [429]
        assert httpx.get(url + "/ping").headers["Retry-After"] == "1"  # 0.5 s, rounded up


def test_the_limiter_is_exact_under_concurrent_callers() -> None:
    limiter = RateLimiter(50, clock=FakeClock())
    granted: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(25):
            ok = limiter.acquire("shared") == 0.0
            with lock:
                granted.append(ok)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 200 and sum(granted) == 50


def test_idle_buckets_are_evicted_and_their_number_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    for n in range(100):
        limiter.acquire(f"ip:10.0.0.{n}")
    assert len(limiter) == 100
    clock.advance(30)
    limiter.acquire("ip:10.0.1.1")
    assert len(limiter) == 101  # 30 s idle: not yet full again, kept
    clock.advance(31)
    limiter.acquire("ip:10.0.1.2")
    assert len(limiter) == 2  # the 100 are full again: dropped; the one 31 s idle stays
    monkeypatch.setattr(limits, "MAX_CALLERS", 10)
    for n in range(50):
        limiter.acquire(f"ip:10.0.2.{n}")
    assert len(limiter) == 10
    with pytest.raises(ValueError):
        RateLimiter(0)
