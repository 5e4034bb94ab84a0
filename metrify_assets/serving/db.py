"""The API's PostgreSQL connections: a pool opened with the app (`pool.open_pool`), one connection per
request."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
from fastapi import Request
from psycopg_pool import ConnectionPool


def connection(request: Request) -> Iterator[psycopg.Connection]:
    """FastAPI dependency: a pooled connection for the request (rolled back if left in a transaction)."""
    pool: ConnectionPool = request.app.state.pool
    with pool.connection() as conn:
        yield conn
