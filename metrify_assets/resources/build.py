"""Build the resources from `Settings`: embedded defaults, or the configured services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg

from metrify_assets.env import AlertSettings, Settings, SnowflakeSettings
from metrify_assets.resources.alerts import AlertChannelsResource
from metrify_assets.resources.grid import GridResource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.resources.lake_resource import LakeResource
from metrify_assets.resources.landing import LandingResource
from metrify_assets.resources.postgres import PostgresResource
from metrify_assets.resources.quality import QualityResource
from metrify_assets.resources.snowflake import SnowflakeResource

if TYPE_CHECKING:  # the Redis client: for the code location, not the CLI's commands
    from metrify_assets.resources.cache_resource import RedisResource


def postgres_resource(settings: Settings) -> PostgresResource:
    """A directly usable resource (the CLI's): the URL's value, not an `EnvVar` reference."""
    return PostgresResource(url=settings.postgres_url, data_dir=str(settings.pg_data_dir))


def redis_resource(settings: Settings) -> RedisResource:
    """The code location's Redis cache (empty URL when not configured: no cache). A URL may hold a
    password, so it is passed as a `dg.EnvVar`; the CLI and the API open theirs with `cache.open_cache`."""
    from metrify_assets.resources.cache_resource import RedisResource

    url: str | dg.EnvVar = dg.EnvVar("REDIS_URL") if settings.redis_url else ""
    return RedisResource(url=url, ttl_s=settings.api.cache_ttl_s)


def kafka_resource(settings: Settings, secrets_as_env: bool = False) -> KafkaResource:
    """Kafka as configured (empty bootstrap servers when not: its sensors then skip)."""
    password: str | dg.EnvVar | None = None
    if settings.kafka_sasl_password_set:
        password = dg.EnvVar("KAFKA_SASL_PASSWORD")
        if not secrets_as_env:
            password = password.get_value()
    return KafkaResource(
        bootstrap_servers=settings.kafka_bootstrap_servers or "",
        group_id=settings.kafka_group_id,
        security_protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_username=settings.kafka_sasl_username,
        sasl_password=password,
        ssl_cafile=settings.kafka_ssl_cafile,
    )


def snowflake_resource(settings: SnowflakeSettings) -> SnowflakeResource:
    """A `SnowflakeResource` on the configured account; the password stays a `dg.EnvVar`.

    Host, port and protocol are passed on only when set, so a real account uses Snowflake's endpoint.
    """
    custom_endpoint = settings.host is not None
    return SnowflakeResource(
        host=settings.host,
        port=settings.port if custom_endpoint else None,
        protocol=settings.protocol if custom_endpoint else None,
        account=settings.account,
        user=settings.user,
        password=dg.EnvVar("METRIFY_SNOWFLAKE_PASSWORD") if settings.password_set else None,
        database=settings.database,
        warehouse=settings.warehouse,
        role=settings.role,
    )


def alert_channels_resource(settings: AlertSettings, secrets_as_env: bool = False) -> AlertChannelsResource:
    """The alert channels as configured. The code location passes the secrets as `dg.EnvVar`s; the
    CLI (`secrets_as_env=False`) uses their values."""

    def secret(name: str, is_set: bool) -> str | dg.EnvVar | None:
        if not is_set:
            return None
        return dg.EnvVar(name) if secrets_as_env else dg.EnvVar(name).get_value()

    return AlertChannelsResource(
        webhook_url=settings.webhook_url,
        webhook_secret=secret("METRIFY_ALERT_WEBHOOK_SECRET", settings.webhook_secret_set),
        # The URL of a Slack-compatible webhook is its credential: a secret like the others.
        slack_webhook_url=(
            dg.EnvVar("METRIFY_ALERT_SLACK_WEBHOOK_URL")
            if secrets_as_env and settings.slack_webhook_url
            else settings.slack_webhook_url
        ),
        smtp_host=settings.smtp_host,
        smtp_port=settings.smtp_port,
        smtp_user=settings.smtp_user,
        smtp_password=secret("METRIFY_ALERT_SMTP_PASSWORD", settings.smtp_password_set),
        smtp_from=settings.smtp_from,
        smtp_to=list(settings.smtp_to),
        smtp_to_by_team={team: list(addresses) for team, addresses in settings.smtp_to_by_team},
        smtp_starttls=settings.smtp_starttls,
        min_severity=settings.min_severity,
    )


def build_resources(settings: Settings) -> dict[str, Any]:
    """Resources keyed as the assets expect them. Secrets (the PostgreSQL URL) stay `dg.EnvVar`s."""
    postgres = (
        PostgresResource(url=dg.EnvVar("METRIFY_POSTGRES_URL"))
        if settings.postgres_url
        else PostgresResource(data_dir=str(settings.pg_data_dir))
    )
    return {
        "postgres": postgres,
        "kafka": kafka_resource(settings, secrets_as_env=True),
        "lake": LakeResource(url=settings.lake_url),
        "landing": LandingResource(directory=str(settings.landing_dir)),
        "quality": QualityResource(alert_threshold=settings.quality_alert_threshold),
        "grid": GridResource(area=settings.grid_area, area_from=settings.grid_area_from),
        "alert_channels": alert_channels_resource(settings.alerts, secrets_as_env=True),
        "redis": redis_resource(settings),
    }
