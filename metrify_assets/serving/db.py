"""The API's PostgreSQL connections: a pool opened with the app, one connection per request."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
from fastapi import Request
from psycopg_pool import ConnectionPool


def open_pool(url: str, max_size: int = 10) -> ConnectionPool:
    """A pool sized for uvicorn's thread pool; connections are checked on checkout, so a restarted
    database costs one failed request's retry, not a dead pool."""
    pool = ConnectionPool(
        url, min_size=1, max_size=max_size, check=ConnectionPool.check_connection, open=False
    )
    pool.open(wait=True, timeout=30)
    return pool


def connection(request: Request) -> Iterator[psycopg.Connection]:
    """FastAPI dependency: a pooled connection for the request (rolled back if left in a transaction)."""
    pool: ConnectionPool = request.app.state.pool
    with pool.connection() as conn:
        yield conn
