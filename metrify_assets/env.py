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
(quality score below which a batch raises an alert, default 95), METRIFY_GRID_AREA (the synchronous
area the grid nodes are judged by where a run's config names none: docs/grid.md; default: the area
the home remembers in HOME/settings.json, written by `metrify demo`, else continental_europe), and for the snowflake target
METRIFY_SNOWFLAKE_ACCOUNT, _USER, _PASSWORD (a secret), _DATABASE, _WAREHOUSE, _ROLE, _HOST, _PORT,
_PROTOCOL. Alert channels (docs/alerts.md; none set: alerts are recorded, not sent):
METRIFY_ALERT_WEBHOOK_URL with METRIFY_ALERT_WEBHOOK_SECRET (a secret: signs each request),
METRIFY_ALERT_SLACK_WEBHOOK_URL, METRIFY_ALERT_SMTP_HOST with _PORT (25), _USER, _PASSWORD (a secret),
_FROM, _TO (comma-separated), _TO_<TEAM> (a team's own recipients: docs/alerts.md#routing-by-team) and
_STARTTLS (true/false), and METRIFY_ALERT_MIN_SEVERITY (info, warning
or critical; default warning). Redis: REDIS_URL (unset: no cache; the API reads PostgreSQL). The
data API (docs/api.md): METRIFY_API_JWT_SECRET (a secret: HS256 tokens) and/or
METRIFY_API_JWT_PUBLIC_KEY (PEM text, or the path of a PEM file: RS256 tokens from an identity
provider), METRIFY_API_JWT_ISSUER, METRIFY_API_JWT_AUDIENCE, METRIFY_API_RATE_LIMIT (requests per
minute per caller, default 600), METRIFY_API_MAX_BODY_BYTES (default 10 MiB), METRIFY_API_CACHE_TTL_S
(default 300), METRIFY_API_CSV_MAX_ROWS (the most rows of a whole-result CSV download, default
1,000,000). Logs (docs/operations.md#logs): METRIFY_LOG_LEVEL (Metrify's loggers, default INFO) and
METRIFY_LOG_FORMAT (json or text; unset: text on a terminal, JSON otherwise). Traces
(docs/operations.md#traces; off unless an exporter or an OTLP endpoint is set): OTEL_TRACES_EXPORTER
(otlp, console or none), OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (OTLP over
HTTP only), OTEL_SERVICE_NAME and OTEL_SDK_DISABLED; the OpenTelemetry SDK reads its other OTEL_*
variables (headers, sampler, batch sizes) itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from metrify_assets.teams import TEAMS


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


ALERT_SEVERITIES = ("info", "warning", "critical")  # as `alerts.store.SEVERITIES` (a test keeps them equal)


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts are sent (docs/alerts.md). No URL and no SMTP host: alerts are recorded, not sent.
    Secrets (the webhook's signing secret, the SMTP password) are only noted as set: Dagster reads
    them as `dg.EnvVar`."""

    webhook_url: str | None = None
    webhook_secret_set: bool = False
    slack_webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password_set: bool = False
    smtp_from: str = "metrify@localhost"
    smtp_to: tuple[str, ...] = ()
    # Per team (metrify_assets/teams.py), recipients that replace smtp_to for its alerts.
    smtp_to_by_team: tuple[tuple[str, tuple[str, ...]], ...] = ()
    smtp_starttls: bool = False
    min_severity: str = "warning"


@dataclass(frozen=True)
class ApiSettings:
    """How the data API authenticates and protects itself (docs/api.md). The API process holds the
    HS256 secret itself (it signs nothing but `metrify api token`'s tokens and verifies them), so it
    is kept out of `repr`."""

    jwt_secret: str | None = field(default=None, repr=False)
    jwt_public_key: str | None = None  # PEM text
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    rate_limit_per_minute: int = 600
    max_body_bytes: int = 10 * 1024 * 1024
    cache_ttl_s: int = 300
    csv_max_rows: int = 1_000_000  # a whole-result CSV download of more rows is refused (docs/api.md)

    @property
    def auth_configured(self) -> bool:
        return bool(self.jwt_secret or self.jwt_public_key)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")
TRACE_EXPORTERS = ("otlp", "console")


@dataclass(frozen=True)
class LogSettings:
    """How Metrify logs (observability/logs.py). `format` None: text on a terminal, JSON otherwise."""

    level: str = "INFO"
    format: str | None = None


@dataclass(frozen=True)
class TracingSettings:
    """Which span exporters to install (observability/tracing.py); none: tracing is off (a no-op
    tracer). The SDK reads the endpoint, headers and sampler from its own OTEL_* variables."""

    exporters: tuple[str, ...] = ()
    service_name: str | None = None  # OTEL_SERVICE_NAME; else each process names itself
    # Why the OTEL_* variables could not be followed (say, gRPC): tracing is then off, with a warning,
    # rather than a tracing setting taking the code location, the API and the CLI down.
    refused: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.exporters)


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
    grid_area: str | None = None  # the deployment's synchronous area (None: grid/areas.DEFAULT_AREA)
    # Where grid_area came from: "METRIFY_GRID_AREA", the home's settings file, or None (the default).
    grid_area_from: str | None = None
    snowflake: SnowflakeSettings = SnowflakeSettings()
    alerts: AlertSettings = AlertSettings()
    redis_url: str | None = None
    api: ApiSettings = ApiSettings()
    log: LogSettings = LogSettings()
    tracing: TracingSettings = TracingSettings()

    @property
    def pg_data_dir(self) -> Path:
        return self.home / "pg"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def dbt_runs_dir(self) -> Path:
        """Where dbt's commands write their target directories and logs: this home's, not the installed
        dbt project's (whose `target/manifest.json`, from `make dbt-parse`, only builds the asset graph)."""
        return self.home / "dbt" / "target"

    @property
    def uses_kafka(self) -> bool:
        return bool(self.kafka_bootstrap_servers)

    @property
    def landing_dir_named(self) -> bool:
        """Whether METRIFY_LANDING_DIR chose the landing directory (else it is HOME/landing)."""
        return self.landing_dir != (self.home / "landing").resolve()


def resolve_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the environment (or a given mapping) into `Settings`."""
    env = os.environ if environ is None else environ
    home = Path(env.get("METRIFY_HOME") or Path.cwd() / ".metrify").resolve()
    remembered = home_settings(home)
    grid_area = env.get("METRIFY_GRID_AREA") or None
    grid_area_from: str | None = "METRIFY_GRID_AREA"
    if grid_area is None:
        grid_area = remembered.get("METRIFY_GRID_AREA")
        grid_area_from = str(home / HOME_SETTINGS_FILE) if grid_area else None
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
        grid_area=grid_area,
        grid_area_from=grid_area_from,
        snowflake=resolve_snowflake(env),
        alerts=resolve_alerts(env),
        redis_url=env.get("REDIS_URL") or None,
        api=resolve_api(env),
        log=resolve_logging(env),
        tracing=resolve_tracing(env),
    )


HOME_SETTINGS_FILE = "settings.json"
# What a home may remember: settings that describe its data, not where its services run.
HOME_SETTINGS = ("METRIFY_GRID_AREA",)


def home_settings(home: Path) -> dict[str, str]:
    """The settings `home` remembers (HOME/settings.json, written by `metrify demo`): defaults below the
    environment, so that its data is judged as it was set up to be whichever shell runs the next
    command (the demo's Great Britain data read under Continental Europe's standards otherwise)."""
    path = home / HOME_SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        stored = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not JSON ({err}): fix or remove it") from err
    if not isinstance(stored, dict) or not all(isinstance(v, str) for v in stored.values()):
        raise ValueError(f"{path} must be a JSON object of setting names to strings, got {stored!r}")
    unknown = sorted(set(stored) - set(HOME_SETTINGS))
    if unknown:
        raise ValueError(
            f"{path}: {', '.join(unknown)} cannot be kept in a home's settings (only {', '.join(HOME_SETTINGS)})"
        )
    return stored


def remember(home: Path, name: str, value: str) -> Path:
    """Keep `name` = `value` in `home`'s settings file (`home_settings`), with what it held besides."""
    if name not in HOME_SETTINGS:
        raise ValueError(f"{name} cannot be kept in a home's settings (only {', '.join(HOME_SETTINGS)})")
    path = home / HOME_SETTINGS_FILE
    stored = {**home_settings(home), name: value}
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under another name, then renamed: a process resolving its settings meanwhile reads
    # the old file or the new, never half of one.
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    partial.replace(path)
    return path


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


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = (env.get(name) or "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


def _addresses(env: Mapping[str, str], variable: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in (env.get(variable) or "").split(",") if a.strip())


def team_recipients_variable(team: str) -> str:
    """`METRIFY_ALERT_SMTP_TO_GRID_OPERATIONS` for team `grid-operations`."""
    return f"METRIFY_ALERT_SMTP_TO_{team.upper().replace('-', '_')}"


def resolve_alerts(env: Mapping[str, str]) -> AlertSettings:
    """The METRIFY_ALERT_* variables. A half-configured channel is an error, not a silent drop: a
    webhook without its signing secret, or an SMTP host without recipients."""
    default = AlertSettings()
    min_severity = (env.get("METRIFY_ALERT_MIN_SEVERITY") or default.min_severity).strip().lower()
    if min_severity not in ALERT_SEVERITIES:
        raise ValueError(
            f"METRIFY_ALERT_MIN_SEVERITY must be one of {', '.join(ALERT_SEVERITIES)}, got {min_severity!r}"
        )
    webhook_url = env.get("METRIFY_ALERT_WEBHOOK_URL") or None
    webhook_secret_set = bool(env.get("METRIFY_ALERT_WEBHOOK_SECRET"))
    if webhook_url and not webhook_secret_set:
        raise ValueError(
            "METRIFY_ALERT_WEBHOOK_URL is set without METRIFY_ALERT_WEBHOOK_SECRET: every webhook request "
            "is signed with it, so that the receiver can tell Metrify's requests from anyone else's"
        )
    smtp_host = env.get("METRIFY_ALERT_SMTP_HOST") or None
    smtp_to = _addresses(env, "METRIFY_ALERT_SMTP_TO")
    if smtp_host and not smtp_to:
        raise ValueError("METRIFY_ALERT_SMTP_HOST is set without METRIFY_ALERT_SMTP_TO (comma-separated)")
    team_variables = {team_recipients_variable(team): team for team in TEAMS}
    misnamed = sorted(k for k in env if k.startswith("METRIFY_ALERT_SMTP_TO_") and k not in team_variables)
    if misnamed:  # a team's list that reaches nobody would send its alerts to METRIFY_ALERT_SMTP_TO unsaid
        raise ValueError(
            f"{', '.join(misnamed)}: no such team; a team's recipients go in one of {', '.join(team_variables)}"
        )
    by_team = tuple(
        (team, to) for variable, team in team_variables.items() if (to := _addresses(env, variable))
    )
    if by_team and not smtp_host:
        raise ValueError(f"{team_recipients_variable(by_team[0][0])} is set without METRIFY_ALERT_SMTP_HOST")
    return AlertSettings(
        webhook_url=webhook_url,
        webhook_secret_set=webhook_secret_set,
        slack_webhook_url=env.get("METRIFY_ALERT_SLACK_WEBHOOK_URL") or None,
        smtp_host=smtp_host,
        smtp_port=int(env.get("METRIFY_ALERT_SMTP_PORT") or default.smtp_port),
        smtp_user=env.get("METRIFY_ALERT_SMTP_USER") or None,
        smtp_password_set=bool(env.get("METRIFY_ALERT_SMTP_PASSWORD")),
        smtp_from=env.get("METRIFY_ALERT_SMTP_FROM") or default.smtp_from,
        smtp_to=smtp_to,
        smtp_to_by_team=by_team,
        smtp_starttls=_flag(env, "METRIFY_ALERT_SMTP_STARTTLS", default.smtp_starttls),
        min_severity=min_severity,
    )


def resolve_api(env: Mapping[str, str]) -> ApiSettings:
    """The METRIFY_API_* variables. The public key may be given as PEM text or as a file's path."""
    default = ApiSettings()
    public_key = env.get("METRIFY_API_JWT_PUBLIC_KEY") or None
    if public_key and "-----BEGIN" not in public_key:
        path = Path(public_key).expanduser()
        if not path.is_file():
            raise ValueError(
                f"METRIFY_API_JWT_PUBLIC_KEY is neither PEM text nor a readable file: {public_key!r}"
            )
        public_key = path.read_text()
    limits = {}
    for name, key in (
        ("METRIFY_API_RATE_LIMIT", "rate_limit_per_minute"),
        ("METRIFY_API_MAX_BODY_BYTES", "max_body_bytes"),
        ("METRIFY_API_CACHE_TTL_S", "cache_ttl_s"),
        ("METRIFY_API_CSV_MAX_ROWS", "csv_max_rows"),
    ):
        raw = (env.get(name) or "").strip()
        if raw:
            if not raw.isdigit() or int(raw) <= 0:
                raise ValueError(f"{name} must be a positive whole number, got {raw!r}")
            limits[key] = int(raw)
    return ApiSettings(
        jwt_secret=env.get("METRIFY_API_JWT_SECRET") or None,
        jwt_public_key=public_key,
        jwt_issuer=env.get("METRIFY_API_JWT_ISSUER") or None,
        jwt_audience=env.get("METRIFY_API_JWT_AUDIENCE") or None,
        rate_limit_per_minute=limits.get("rate_limit_per_minute", default.rate_limit_per_minute),
        max_body_bytes=limits.get("max_body_bytes", default.max_body_bytes),
        cache_ttl_s=limits.get("cache_ttl_s", default.cache_ttl_s),
        csv_max_rows=limits.get("csv_max_rows", default.csv_max_rows),
    )


def resolve_logging(environ: Mapping[str, str] | None = None) -> LogSettings:
    """METRIFY_LOG_LEVEL and METRIFY_LOG_FORMAT (on their own for the CLI, which sets logging up
    before any command reads the rest)."""
    env = os.environ if environ is None else environ
    level = (env.get("METRIFY_LOG_LEVEL") or "INFO").strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"METRIFY_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    fmt = (env.get("METRIFY_LOG_FORMAT") or "").strip().lower() or None
    if fmt is not None and fmt not in LOG_FORMATS:
        raise ValueError(f"METRIFY_LOG_FORMAT must be json or text, got {fmt!r}")
    return LogSettings(level=level, format=fmt)


def resolve_tracing(environ: Mapping[str, str] | None = None) -> TracingSettings:
    """The standard OTEL_* variables that decide whether spans are exported, and where to. Unlike the
    SDK's own default (otlp), no variable set means no tracing: an OTLP endpoint, or
    OTEL_TRACES_EXPORTER, turns it on; OTEL_SDK_DISABLED=true turns it off whatever else is set."""
    env = os.environ if environ is None else environ
    if _flag(env, "OTEL_SDK_DISABLED", False):
        return TracingSettings()
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    names = [n.strip().lower() for n in (env.get("OTEL_TRACES_EXPORTER") or "").split(",") if n.strip()]
    if not names:
        names = ["otlp"] if endpoint else []
    names = [n for n in names if n != "none"]
    unknown = sorted(set(names) - set(TRACE_EXPORTERS))
    if unknown:
        return TracingSettings(
            refused=f"OTEL_TRACES_EXPORTER: {', '.join(unknown)} not supported (otlp, console or none)"
        )
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if "otlp" in names and protocol and protocol != "http/protobuf":
        return TracingSettings(
            refused=f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r}: Metrify exports OTLP over HTTP only "
            "(http/protobuf, usually port 4318)"
        )
    return TracingSettings(
        exporters=tuple(dict.fromkeys(names)), service_name=env.get("OTEL_SERVICE_NAME") or None
    )
