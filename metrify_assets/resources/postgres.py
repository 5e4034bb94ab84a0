"""PostgreSQL: any server by URL, or an embedded one (pgserver) in a local data directory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import dagster as dg
import psycopg

from metrify_assets.storage.migrate import migrate


@cache
def embedded_postgres_url(data_dir: str) -> str:
    """Start (or attach to) the embedded PostgreSQL in `data_dir` and return its URL.

    pgserver shares one server between processes that use the same directory, so the CLI,
    `dagster dev` and tests attach to the same database.
    """
    import pgserver  # imported lazily: only embedded mode needs it

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode=None)
    return str(server.get_uri())


class PostgresResource(dg.ConfigurableResource):
    """The operational database. `url` empty means: the embedded server in `data_dir`."""

    url: str | None = None
    data_dir: str = ".metrify/pg"

    def get_url(self) -> str:
        return self.url or embedded_postgres_url(str(Path(self.data_dir).resolve()))

    @contextmanager
    def connect(self, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        """A connection to a database at the current schema version, that commits on success and
        rolls back on error. Pending migrations are applied on the first connection of a process."""
        with psycopg.connect(self.get_url(), autocommit=autocommit) as conn:
            migrate(conn)
            yield conn
