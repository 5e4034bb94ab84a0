"""The data API: serve it, make bearer tokens for local use, and revoke tokens.

`metrify api serve`, `metrify api token`, `metrify api revoke` and `metrify api revocations`: the
data API from the command line (docs/api.md).

`token` signs with METRIFY_API_JWT_SECRET, the secret the API verifies HS256 tokens with, for curl,
scripts and tests; a real deployment gives people tokens from its identity provider (RS256).
`revoke` cuts one token off by its id (`jti`), whoever issued it, recorded with who, when and why
in `ops.api_token_revocations` and the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from metrify_assets.cli.audit import cli_caller, who
from metrify_assets.cli.console import command_console, to_json
from metrify_assets.cli.db import connect
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

    @api_app.command("revoke")
    def revoke_cmd(
        token_id: Annotated[
            str,
            typer.Argument(
                help="The token's id (its `jti`: printed by `metrify api token`, the audit log's token "
                "column), or the token itself."
            ),
        ],
        reason: Annotated[str, typer.Option("--reason", help="Why (a ticket, 'leaked in a log'); stored.")],
        by: Annotated[
            str | None, typer.Option("--by", help="Who revokes it (a name or e-mail); default: the OS user.")
        ] = None,
    ) -> None:
        """Revoke an API token: the API answers it 401 `token_revoked` on every route from the next
        reload of its revocation list (within 5 s). Revoking a token again changes nothing and says
        when it was revoked. Recorded in the audit log (`token.revoke`, target token:<id>)."""
        import jwt

        from metrify_assets.serving.auth import (  # the web stack, only when it is needed
            REVOCATION_REFRESH_S,
            revoke,
            token_id_of,
        )

        given = token_id.strip()
        if given.count(".") == 2:  # a JWT (header.payload.signature), not an id
            try:
                found = token_id_of(given)
            except jwt.DecodeError as err:
                typer.echo(
                    f"error: the argument looks like a token but cannot be read as one ({err})", err=True
                )
                raise typer.Exit(code=2) from err
            if found is None:
                typer.echo(
                    "error: this token has no `jti`, so it cannot be revoked on its own; rotate the key "
                    "that signs it, which cuts off every token it signed (docs/api.md#revoking-a-token)",
                    err=True,
                )
                raise typer.Exit(code=2)
            given = found
        with connect(resolve_settings()) as conn:
            try:
                done, new = revoke(conn, given, reason, cli_caller(by or who()))
            except ValueError as err:  # not an id a token can have, or no reason
                typer.echo(f"error: {err}", err=True)
                raise typer.Exit(code=2) from err
            conn.commit()
        when = f"{done.revoked_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        if new:
            typer.echo(
                f"revoked token {done.token_id} at {when}: the API refuses it (401 token_revoked) within "
                f"{REVOCATION_REFRESH_S:.0f} s; "
                f"its calls so far: metrify audit --token-id {done.token_id}"
            )
        else:
            typer.echo(
                f"token {done.token_id} was already revoked at {when} by {done.revoked_by} "
                f"({done.reason}); nothing changed"
            )

    @api_app.command("revocations")
    def revocations_cmd(
        as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
    ) -> None:
        """List the revoked API tokens, newest first: id, when, who (as named, and the OS account), why."""
        from metrify_assets.serving.auth import revocations

        with connect(resolve_settings()) as conn:
            found = revocations(conn)
        if as_json:
            typer.echo(to_json([r.as_dict() for r in found]))
            return
        table = Table(title=f"revoked API tokens: {len(found)} (newest first)")
        for column in ("token id", "revoked (UTC)", "by", "account", "reason"):
            table.add_column(column)
        for r in found:
            table.add_row(
                r.token_id,
                f"{r.revoked_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
                r.revoked_by,
                r.account or "",
                r.reason,
            )
        command_console().print(table if found else "no revoked tokens")

    app.add_typer(api_app, name="api")
