"""dbt's PostgreSQL connection settings, derived from the `postgres` resource's URL.

profiles.yml reads METRIFY_PG_* variables; the URL is the one source of truth for where PostgreSQL
runs (a server by URL, or embedded pgserver on a unix socket), so the variables are derived from it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 5432


def dbt_env_from_url(url: str) -> dict[str, str]:
    """Map a libpq URL to the METRIFY_PG_* variables that profiles.yml reads.

    Handles TCP URLs (`postgresql://user:pw@host:5432/db`) and unix-socket URLs, where the socket
    directory comes as a `host` query parameter (`postgresql://postgres:@/postgres?host=/tmp/pg`).
    Query parameters win over the netloc, as in libpq.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {parts.scheme}://...")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    host = query.get("host") or unquote(parts.hostname or "") or "localhost"
    port = query.get("port") or (str(parts.port) if parts.port else str(DEFAULT_PORT))
    user = query.get("user") or unquote(parts.username or "") or "postgres"
    password = query.get("password") or unquote(parts.password or "")
    dbname = query.get("dbname") or unquote(parts.path.lstrip("/")) or user
    return {
        "METRIFY_PG_HOST": host,
        "METRIFY_PG_PORT": port,
        "METRIFY_PG_USER": user,
        "METRIFY_PG_PASSWORD": password,
        "METRIFY_PG_DBNAME": dbname,
    }


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block (dbt subprocesses inherit them)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
