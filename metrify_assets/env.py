"""Resolve where Metrify's services live: embedded defaults unless the environment says otherwise.

This is the one module that reads the environment. It is called when resources and the CLI are
built, never at import time, so `dagster dev`, tests and the CLI can each set the environment first.

Variables (all optional; README.md has the full table):
METRIFY_HOME (local state, default ./.metrify), METRIFY_POSTGRES_URL (default: embedded pgserver in
HOME/pg), METRIFY_LAKE_URL (a directory or s3://bucket/prefix; default HOME/lake), AWS_ENDPOINT_URL
(S3-compatible endpoint), METRIFY_LANDING_DIR (default HOME/landing), KAFKA_BOOTSTRAP_SERVERS (unset:
landing directory instead of Kafka) with KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM,
KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD (a secret: passed on as `dg.EnvVar`), KAFKA_SSL_CAFILE and
METRIFY_KAFKA_GROUP_ID, METRIFY_DBT_TARGET (postgres or snowflake), METRIFY_QUALITY_ALERT_THRESHOLD
(quality score below which a batch raises an alert, default 95), and for the snowflake target
METRIFY_SNOWFLAKE_ACCOUNT, _USER, _PASSWORD (a secret), _DATABASE, _WAREHOUSE, _ROLE, _HOST, _PORT,
_PROTOCOL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SnowflakeSettings:
    """Where the `snowflake` dbt target and the warehouse load connect (profiles.yml reads the same
    variables). Host, port and protocol default to Snowflake's own endpoint for the account."""

    account: str = "metrify"
    user: str = "metrify"
    database: str = "METRIFY"
    warehouse: str = "COMPUTE_WH"
    role: str = "SYSADMIN"
    host: str | None = None
    port: int = 443
    protocol: str = "https"
    password_set: bool = False


@dataclass(frozen=True)
class Settings:
    """Where each part of Metrify runs. `None` for a URL means: use the embedded default."""

    home: Path
    postgres_url: str | None
    lake_url: str
    landing_dir: Path
    kafka_bootstrap_servers: str | None
    dbt_target: str
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password_set: bool = False
    kafka_ssl_cafile: str | None = None
    kafka_group_id: str = "metrify-ingest"
    quality_alert_threshold: float = 95.0  # a batch scoring below this raises a quality alert
    snowflake: SnowflakeSettings = SnowflakeSettings()

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
        kafka_security_protocol=env.get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT",
        kafka_sasl_mechanism=env.get("KAFKA_SASL_MECHANISM") or None,
        kafka_sasl_username=env.get("KAFKA_SASL_USERNAME") or None,
        kafka_sasl_password_set=bool(env.get("KAFKA_SASL_PASSWORD")),
        kafka_ssl_cafile=env.get("KAFKA_SSL_CAFILE") or None,
        kafka_group_id=env.get("METRIFY_KAFKA_GROUP_ID") or "metrify-ingest",
        quality_alert_threshold=float(env.get("METRIFY_QUALITY_ALERT_THRESHOLD") or 95.0),
        snowflake=resolve_snowflake(env),
    )


def resolve_snowflake(env: Mapping[str, str]) -> SnowflakeSettings:
    """The METRIFY_SNOWFLAKE_* variables, with profiles.yml's defaults."""
    default = SnowflakeSettings()
    return SnowflakeSettings(
        account=env.get("METRIFY_SNOWFLAKE_ACCOUNT") or default.account,
        user=env.get("METRIFY_SNOWFLAKE_USER") or default.user,
        database=env.get("METRIFY_SNOWFLAKE_DATABASE") or default.database,
        warehouse=env.get("METRIFY_SNOWFLAKE_WAREHOUSE") or default.warehouse,
        role=env.get("METRIFY_SNOWFLAKE_ROLE") or default.role,
        host=env.get("METRIFY_SNOWFLAKE_HOST") or None,
        port=int(env.get("METRIFY_SNOWFLAKE_PORT") or default.port),
        protocol=env.get("METRIFY_SNOWFLAKE_PROTOCOL") or default.protocol,
        password_set=bool(env.get("METRIFY_SNOWFLAKE_PASSWORD")),
    )
