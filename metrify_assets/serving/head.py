"""HEAD requests, answered as the GET of the same URL without its body (RFC 9110 section 9.3.2).

FastAPI routes the methods a route declares, and its routes declare GET alone, so uptime checks,
link checkers and caches that ask with HEAD got a 405. Declaring HEAD on every route would document
each operation twice in the OpenAPI schema; this middleware instead runs the request as a GET (the
same authentication, limits and status) and sends the GET's status and headers, `Content-Length`
included, with an empty body. A 405 that allows GET says that HEAD is allowed too. The route the
GET found is set on the HEAD's scope too, so the request metrics label the HEAD with its route.

A route whose body costs more than its headers asks `is_head(request)` and leaves the body out: a
whole-result CSV download (`output.csv_download`) counts its rows for `X-Row-Count` and reads none,
where the GET's body, streamed page by page, would have been read to the end only to be dropped here.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Set on the GET's scope of a HEAD request: the routes see the method GET.
HEAD_SCOPE_KEY = "metrify.head"


def is_head(request: Request) -> bool:
    """Whether the request is a HEAD answered as its GET: only the GET's status and headers are sent."""
    return request.method == "HEAD" or bool(request.scope.get(HEAD_SCOPE_KEY))


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                headers = MutableHeaders(scope=message)
                allowed = [m.strip() for m in headers.get("allow", "").split(",") if m.strip()]
                if "GET" in allowed and "HEAD" not in allowed:
                    headers["allow"] = ", ".join([*allowed, "HEAD"])
            elif head and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # the body's earlier chunks: a HEAD answer has none
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        if not head:
            await self.app(scope, receive, answer)
            return
        # The caller's scope keeps HEAD (the metrics' method label).
        as_get = {**scope, "method": "GET", HEAD_SCOPE_KEY: True}
        try:
            await self.app(as_get, receive, answer)
        finally:
            if "route" in as_get:  # the route the router found, for the metrics' route label
                scope["route"] = as_get["route"]
