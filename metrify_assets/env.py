"""Resolve where Metrify's services live: embedded defaults unless the environment says otherwise.

This is the one module that reads the environment. It is called when resources and the CLI are
built, never at import time, so `dagster dev`, tests and the CLI can each set the environment first.

Variables (all optional; README.md has the full table):
METRIFY_HOME (local state, default ./.metrify), METRIFY_POSTGRES_URL (default: embedded pgserver in
HOME/pg), METRIFY_LAKE_URL (a directory or s3://bucket/prefix; default HOME/lake), AWS_ENDPOINT_URL
(S3-compatible endpoint), METRIFY_LANDING_DIR (default HOME/landing), KAFKA_BOOTSTRAP_SERVERS (unset:
landing directory instead of Kafka), METRIFY_DBT_TARGET (postgres or snowflake).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Where each part of Metrify runs. `None` for a URL means: use the embedded default."""

    home: Path
    postgres_url: str | None
    lake_url: str
    landing_dir: Path
    kafka_bootstrap_servers: str | None
    dbt_target: str

    @property
    def pg_data_dir(self) -> Path:
        return self.home / "pg"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def uses_kafka(self) -> bool:
        return bool(self.kafka_bootstrap_servers)


def resolve_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the environment (or a given mapping) into `Settings`."""
    env = os.environ if environ is None else environ
    home = Path(env.get("METRIFY_HOME") or Path.cwd() / ".metrify").resolve()
    lake_url = env.get("METRIFY_LAKE_URL") or str(home / "lake")
    landing = Path(env.get("METRIFY_LANDING_DIR") or home / "landing").resolve()
    target = env.get("METRIFY_DBT_TARGET") or "postgres"
    if target not in ("postgres", "snowflake"):
        raise ValueError(f"METRIFY_DBT_TARGET must be 'postgres' or 'snowflake', got {target!r}")
    return Settings(
        home=home,
        postgres_url=env.get("METRIFY_POSTGRES_URL") or None,
        lake_url=lake_url,
        landing_dir=landing,
        kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        dbt_target=target,
    )
