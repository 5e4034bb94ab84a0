"""The data API: serve it, and make bearer tokens for local use.

`metrify api serve` and `metrify api token`: the data API from the command line (docs/api.md).

`token` signs with METRIFY_API_JWT_SECRET, the secret the API verifies HS256 tokens with, for curl,
scripts and tests; a real deployment gives people tokens from its identity provider (RS256).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from metrify_assets.cli.audit import who
from metrify_assets.env import resolve_settings

TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(value: str) -> timedelta:
    """`90s`, `30m`, `1h`, `7d` as a timedelta."""
    text = value.strip().lower()
    number, unit = text[:-1], text[-1:]
    if unit not in TTL_UNITS or not (number.isascii() and number.isdigit()) or int(number) == 0:
        typer.echo(
            f"error: --ttl must be a positive whole number with s, m, h or d (30m, 1h, 7d), got {value!r}",
            err=True,
        )
        raise typer.Exit(code=2)
    return timedelta(seconds=int(number) * TTL_UNITS[unit])


def register(app: typer.Typer) -> None:
    api_app = typer.Typer(
        help="The data API: serve it, and bearer tokens for local use.", no_args_is_help=True
    )

    @api_app.command("serve")
    def serve_cmd(
        host: Annotated[
            str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
        workers: Annotated[
            int, typer.Option(min=1, help="uvicorn worker processes (each its own pool and limits).")
        ] = 1,
        proxy_headers: Annotated[
            bool,
            typer.Option(help="Trust X-Forwarded-For from a proxy in front (rate limits per real caller)."),
        ] = False,
    ) -> None:
        """Serve the API on uvicorn: OpenAPI docs at /docs, health at /healthz and /readyz. Needs
        METRIFY_API_JWT_SECRET or METRIFY_API_JWT_PUBLIC_KEY; uses Kafka and Redis when configured."""
        import uvicorn

        from metrify_assets.observability.logs import uvicorn_log_config
        from metrify_assets.serving.app import ApiConfigError, create_app

        settings = resolve_settings()
        try:
            app = create_app(settings)  # checks the configuration before binding the port
        except (ApiConfigError, ValueError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
        log_config = uvicorn_log_config(settings.log)  # its access and error logs in Metrify's format
        where = "Kafka" if settings.uses_kafka else f"the landing directory {settings.landing_dir}"
        cache = "Redis cache on" if settings.redis_url else "no cache (REDIS_URL unset)"
        typer.echo(
            f"Metrify data API on http://{host}:{port} (OpenAPI: /openapi.json; /docs and /redoc "
            f"need no internet); ingestion to {where}; {cache}",
            err=True,
        )
        if workers == 1:
            uvicorn.run(app, host=host, port=port, proxy_headers=proxy_headers, log_config=log_config)
        else:
            factory = "metrify_assets.serving.app:app_from_env"
            uvicorn.run(
                factory,
                factory=True,
                host=host,
                port=port,
                workers=workers,
                proxy_headers=proxy_headers,
                log_config=log_config,
            )

    @api_app.command("token")
    def token_cmd(
        scope: Annotated[
            list[str], typer.Option("--scope", help="A scope to grant (repeat): ingest, read, review, admin.")
        ],
        ttl: Annotated[str, typer.Option(help="How long the token is valid: 30m, 1h, 7d.")] = "1h",
        subject: Annotated[
            str | None, typer.Option(help="Who the token is for (its `sub`); default: the OS user.")
        ] = None,
        meter: Annotated[
            list[str] | None,
            typer.Option(
                "--meter",
                help="Limit the token to this meter (repeat): it reads only per-meter data, and only its meters' "
                "rows (docs/api.md).",
            ),
        ] = None,
    ) -> None:
        """Print a bearer token signed with METRIFY_API_JWT_SECRET (HS256): `TOKEN=$(metrify api token
        --scope read)`, then `curl -H "Authorization: Bearer $TOKEN" ...`."""
        from metrify_assets.serving.auth import issue_token, token_id_of  # the web stack, only when needed

        lifetime = parse_ttl(ttl)
        settings = resolve_settings().api
        if not settings.jwt_secret:
            typer.echo(
                "error: METRIFY_API_JWT_SECRET is not set; set the same secret here and in the API's "
                "environment (e.g. `export METRIFY_API_JWT_SECRET=$(openssl rand -hex 32)`)",
                err=True,
            )
            raise typer.Exit(code=2)
        sub = subject or who()
        try:
            token = issue_token(
                settings.jwt_secret,
                sub,
                scope,
                lifetime,
                meters=meter or None,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
            )
        except ValueError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
        typer.echo(token)
        limit = f", meters {', '.join(sorted(set(meter)))}" if meter else ""
        until = datetime.now(UTC) + lifetime
        typer.echo(
            f"token for {sub}: scopes {' '.join(sorted(set(scope)))}{limit}; valid until {until:%Y-%m-%d %H:%M} UTC; "
            f"id {token_id_of(token)} (the audit log's token_id: metrify audit --token-id)",
            err=True,
        )

    app.add_typer(api_app, name="api")
