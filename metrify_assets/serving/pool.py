"""The PostgreSQL connection pool of the API and of `metrify metrics serve`: a module without FastAPI,
so the exporter does not import it (2 s)."""

from __future__ import annotations

from psycopg_pool import ConnectionPool


def open_pool(url: str, max_size: int = 10) -> ConnectionPool:
    """A pool sized for uvicorn's thread pool; connections are checked on checkout, so a restarted
    database costs one failed request's retry, not a dead pool."""
    pool = ConnectionPool(
        url, min_size=1, max_size=max_size, check=ConnectionPool.check_connection, open=False
    )
    pool.open(wait=True, timeout=30)
    return pool
