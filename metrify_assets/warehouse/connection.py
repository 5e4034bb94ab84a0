"""The environment of a dbt command: PostgreSQL's connection settings, derived from the `postgres`
resource's URL, and the days a partitioned build covers.

profiles.yml reads METRIFY_PG_* variables; the URL is the one source of truth for where PostgreSQL
runs (a server by URL, or embedded pgserver on a unix socket), so the variables are derived from it.
The days are METRIFY_DBT_MIN_DATE / METRIFY_DBT_MAX_DATE (macros/incremental.sql `partition_days`);
every command sets them, empty when it builds no particular days, so a value exported in the shell
never narrows a rebuild, the docs or the freshness check.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 5432
# The environment variables that name a partitioned build's first and last (inclusive) day to dbt.
FIRST_DAY, LAST_DAY = "METRIFY_DBT_MIN_DATE", "METRIFY_DBT_MAX_DATE"


def dbt_env(url: str, days: tuple[date, date] | None = None) -> dict[str, str]:
    """The environment of a dbt command against the PostgreSQL at `url` that builds `days` (first and
    last, inclusive), or no particular days."""
    return {**dbt_env_from_url(url), **partition_env(days)}


def partition_env(days: tuple[date, date] | None) -> dict[str, str]:
    """The environment that names a build's first and last day to dbt; empty values for a build
    without days, so a variable set in the process's own environment never narrows it."""
    if days is None:
        return {FIRST_DAY: "", LAST_DAY: ""}
    return {FIRST_DAY: days[0].isoformat(), LAST_DAY: days[1].isoformat()}


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
